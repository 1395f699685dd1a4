"""The scorecard from Prometheus' HTTP API (`--url`): one that scrapes the agents or receives their remote write.

Counts are counter differences per series, not `increase()`: the last value in the window
(`last_over_time`, so a series that stopped mid-window — a renamed journey, a removed region —
still counts) minus the value at the window's start (0 for a series born inside it). That is exact
where `increase()` extrapolates to the window's edges. A series that reset inside the window (an
agent restarted) takes `increase()` instead, rounded; a drop across the window's start counts as a
reset too. Quantiles come from the `qos_journey_duration_seconds` buckets of on-time runs
(`lagged="false"`), differenced the same way and summed over agents (and regions, for a journey),
then Prometheus' `histogram_quantile` arithmetic: an estimate inside the bucket. Disrupted and
hidden minutes are `qos_disruption_seconds_total` and `qos_disruption_hidden_seconds_total`.
The objectives are the agents' `qos_journey_slo_*` gauges (journeys.yaml wins when given).
"""

from __future__ import annotations

from typing import Any

from qos_agent.reports.errors import ReportError
from qos_agent.reports.figures import Band, Cell, Figures, Quantiles, Timeline, histogram_quantile
from qos_agent.reports.period import Window
from qos_agent.reports.sources.http import request_json, shown_url

RUNS = "qos_journey_runs_total"
FLAKY = "qos_journey_flaky_total"
BUCKETS = 'qos_journey_duration_seconds_bucket{lagged="false"}'  # on-time runs only
JOURNEY_BUCKETS = 'qos_journey_duration_seconds_bucket{lagged="false",kind!="uptime"}'
DISRUPTED = "qos_disruption_seconds_total"
HIDDEN = "qos_disruption_hidden_seconds_total"
LOOKBACK_MS = 300_000  # Prometheus' default lookback of an instant selector
PRESENCE_STEPS = 200  # first/last seen: the runs series looked up at this many instants of the window
Labels = tuple[tuple[str, str], ...]


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


class PrometheusSource:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ReportError(f"--url {url!r} is not an http(s) URL of Prometheus (e.g. http://prometheus:9090)")
        self.description = f"Prometheus {shown_url(self.url)}"

    def _call(self, path: str, form: dict[str, str]) -> list[dict[str, Any]]:
        doc = request_json(self.url + path, form, what="Prometheus")
        if not isinstance(doc, dict) or doc.get("status") != "success":
            error = doc.get("error", doc) if isinstance(doc, dict) else doc
            raise ReportError(f"Prometheus at {shown_url(self.url)} refused a query: {error}")
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def instant(self, promql: str, at_ms: int) -> dict[Labels, float]:
        return {tuple(sorted(r["metric"].items())): float(r["value"][1])
                for r in self._call("/api/v1/query", {"query": promql, "time": _seconds(at_ms)})}

    def ranged(self, promql: str, window: Window, step_ms: int) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
        form = {"query": promql, "start": _seconds(window.from_ms), "end": _seconds(window.to_ms),
                "step": f"{max(1, step_ms) / 1000:.3f}"}
        return [(r["metric"], [(round(float(t) * 1000), float(v)) for t, v in r["values"]])
                for r in self._call("/api/v1/query_range", form)]

    def deltas(self, selector: str, window: Window) -> dict[Labels, float]:
        """Per series: how much the counter rose inside the window (exact unless it reset)."""
        d = f"{max(1, (window.to_ms - window.from_ms) // 1000)}s"
        end = self.instant(f"last_over_time({selector}[{d}])", window.to_ms)
        start = self.instant(selector, window.from_ms)
        reset = self.instant(f"resets({selector}[{d}]) > 0", window.to_ms)
        out = {labels: (value - start.get(labels, 0.0) if value >= start.get(labels, 0.0) else value)
               for labels, value in end.items()}
        if reset:
            rose = self.instant(f"increase({selector}[{d}])", window.to_ms)
            out.update({labels: float(round(rose.get(labels, out.get(labels, 0.0)))) for labels in reset})
        return out

    def figures(self, window: Window) -> Figures:
        figures = Figures(window, latency_method="histogram")
        for labels, rose in self.deltas(RUNS, window).items():
            tags = dict(labels)
            cell = self._cell(figures, tags)
            n = round(rose)
            outcome = tags.get("outcome", "")
            cell.runs += n
            cell.successes += n if outcome in ("passed", "degraded") else 0
            cell.degraded += n if outcome == "degraded" else 0
            cell.lagged += n if tags.get("lagged") == "true" else 0
            if n:
                cell.agents.add(tags.get("agent", ""))
        for selector, add in ((FLAKY, "flaky"), (DISRUPTED, "disrupted_s"), (HIDDEN, "hidden_s")):
            for labels, rose in self.deltas(selector, window).items():
                cell = self._cell(figures, dict(labels))
                setattr(cell, add, getattr(cell, add) + (round(rose) if add == "flaky" else rose))
        self._latency(figures, window)
        self._objectives(figures, window)
        self._presence(figures, window)
        figures.cells = {k: c for k, c in figures.cells.items() if c.runs or c.disrupted_s or c.flaky}
        return figures

    @staticmethod
    def _cell(figures: Figures, tags: dict[str, str]) -> Cell:
        cell = figures.cell(tags.get("journey", ""), tags.get("region", ""))
        cell.kind = tags.get("kind") or cell.kind
        cell.owner = tags.get("owner") or cell.owner
        cell.customer_reason = tags.get("customer_reason") or cell.customer_reason
        cell.weight = tags.get("weight") or cell.weight
        return cell

    def _latency(self, figures: Figures, window: Window) -> None:
        per_cell: dict[tuple[str, str], dict[float, float]] = {}
        per_journey: dict[str, dict[float, float]] = {}
        for labels, rose in self.deltas(BUCKETS, window).items():
            tags = dict(labels)
            le = float(tags.get("le", "inf").replace("+Inf", "inf"))
            key = (tags.get("journey", ""), tags.get("region", ""))
            per_cell.setdefault(key, {})[le] = per_cell.get(key, {}).get(le, 0.0) + rose
            if tags.get("kind", "journey") != "uptime":
                per_journey.setdefault(key[0], {})[le] = per_journey.get(key[0], {}).get(le, 0.0) + rose

        def quantiles(buckets: dict[float, float]) -> Quantiles:
            pairs = sorted(buckets.items())
            return Quantiles(*(None if (v := histogram_quantile(q, pairs)) is None else v * 1000
                               for q in (0.5, 0.95, 0.99)))

        for key, buckets in per_cell.items():
            if key in figures.cells:
                figures.cells[key].latency = quantiles(buckets)
        figures.journey_latency = {j: quantiles(b) for j, b in per_journey.items()}

    def _objectives(self, figures: Figures, window: Window) -> None:
        d = f"{max(1, (window.to_ms - window.from_ms) // 1000)}s"
        success = self._by_journey(f"max by (journey) (last_over_time(qos_journey_slo_success_ratio[{d}]))", window)
        latency = self._by_journey(f"max by (journey) (last_over_time(qos_journey_slo_latency_seconds[{d}]))", window)
        for cell in figures.cells.values():
            cell.slo_success = success.get(cell.journey, cell.slo_success)
            if cell.journey in latency:
                cell.slo_latency_ms = latency[cell.journey] * 1000

    def _by_journey(self, promql: str, window: Window) -> dict[str, float]:
        return {dict(labels).get("journey", ""): value for labels, value in self.instant(promql, window.to_ms).items()}

    def _presence(self, figures: Figures, window: Window) -> None:
        """When each journey × region's runs series came and went, to one step: instants evaluated back
        from the window's end (so a series born a second ago is seen); a series first seen at t was
        born after the step before (within the 5-minute lookback), so its start is put there."""
        step = max(1000, (window.to_ms - window.from_ms) // PRESENCE_STEPS)
        aligned = Window(window.to_ms - (window.to_ms - window.from_ms) // step * step, window.to_ms, window.label)
        for tags, values in self.ranged(f"count by (journey, region) ({RUNS})", aligned, step):
            cell = figures.cells.get((tags.get("journey", ""), tags.get("region", "")))
            if cell is not None and values:
                born = values[0][0] - min(step, LOOKBACK_MS) if values[0][0] > aligned.from_ms else window.from_ms
                cell.seen(max(window.from_ms, born), values[-1][0])

    def disruptions(self, window: Window) -> None:
        return None  # Prometheus keeps their minutes, not the disruptions one by one

    def steps(self, selector: str, window: Window, bucket_ms: int, count: int
              ) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
        """Per series, how much the counter rose in each bucket: its values at the buckets' edges,
        differenced (a drop is a reset: the new value counts; a series born in a bucket counts from 0).
        Exact at any bucket size, unlike `increase()` over a range shorter than two scrapes."""
        edges = Window(window.from_ms, window.from_ms + count * bucket_ms, window.label)
        out = []
        for tags, values in self.ranged(selector, edges, bucket_ms):
            at = dict(values)
            rises = []
            for i in range(count):
                end = at.get(window.from_ms + (i + 1) * bucket_ms)
                if end is not None:
                    start = at.get(window.from_ms + i * bucket_ms)
                    rises.append((i, end - start if start is not None and end >= start else end))
            out.append((tags, rises))
        return out

    def timeline(self, window: Window, bucket_ms: int) -> Timeline:
        count = max(1, -(-(window.to_ms - window.from_ms) // bucket_ms))
        timeline = Timeline(window.from_ms, bucket_ms, count)
        for tags, rises in self.steps(RUNS, window, bucket_ms, count):
            series = timeline.series(tags.get("journey", ""), tags.get("region", ""), tags.get("kind", "journey"))
            name = {"passed": "passed", "degraded": "degraded"}.get(tags.get("outcome", ""), "failed")
            for i, rose in rises:
                setattr(series[i], name, getattr(series[i], name) + max(0, round(rose)))
        histograms: dict[tuple[str, str, int], dict[float, float]] = {}
        for tags, rises in self.steps(JOURNEY_BUCKETS, window, bucket_ms, count):
            le = float(tags.get("le", "inf").replace("+Inf", "inf"))
            for i, rose in rises:
                found = histograms.setdefault((tags.get("journey", ""), tags.get("region", ""), i), {})
                found[le] = found.get(le, 0.0) + rose
        for (journey, region, i), buckets in histograms.items():
            p95 = histogram_quantile(0.95, sorted(buckets.items()))
            if (journey, region) in timeline.runs and p95 is not None:
                timeline.runs[(journey, region)][i].p95_ms = p95 * 1000
        timeline.bands = self._bands(window, bucket_ms, count)
        return timeline

    def _bands(self, window: Window, bucket_ms: int, count: int) -> list[Band]:
        """Disruptions to the bucket: open at any scrape in it (or at its end, for buckets shorter than a scrape)."""
        b = f"{bucket_ms // 1000}s"
        ends = Window(window.from_ms + bucket_ms, window.from_ms + count * bucket_ms, window.label)
        found: dict[tuple[str, str, str], list[int]] = {}
        promql = (f"max by (journey, region, hidden_from_uptime) (max_over_time(qos_disruption_open[{b}]) "
                  "or qos_disruption_open) == 1")
        for tags, values in self.ranged(promql, ends, bucket_ms):
            key = (tags.get("journey", ""), tags.get("region", ""), tags.get("hidden_from_uptime", ""))
            found.setdefault(key, []).extend(sorted({(t - window.from_ms) // bucket_ms - 1 for t, _ in values}))
        bands = []
        for (journey, region, hidden), indexes in sorted(found.items()):
            run_start = prev = indexes[0]
            for i in [*indexes[1:], -1]:
                if i != prev + 1:
                    begin, end = timeline_ms(window, bucket_ms, run_start), timeline_ms(window, bucket_ms, prev + 1)
                    bands.append(Band(journey, region, begin, None if prev == count - 1 else end, hidden == "true"))
                    run_start = i
                prev = i
        return bands


def timeline_ms(window: Window, bucket_ms: int, index: int) -> int:
    return window.from_ms + index * bucket_ms
