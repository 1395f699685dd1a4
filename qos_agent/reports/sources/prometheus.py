"""The scorecard from Prometheus' HTTP API (`--url`): one that scrapes the agents or receives their remote write.

Every count is a counter difference over the window (reports/sources/promql.py: exact, a few lookups
per series whatever the window's length). Runs by outcome are `qos_journey_runs_total`; quantiles
come from the `qos_journey_duration_seconds` buckets of on-time runs (`lagged="false"`), summed over
agents (and regions, for a journey), then Prometheus' `histogram_quantile` arithmetic: an estimate
inside the bucket. Disrupted and hidden minutes are `qos_disruption_seconds_total` and
`qos_disruption_hidden_seconds_total`. The objectives are the agents' `qos_journey_slo_*` gauges
(journeys.yaml wins when given). Disruptions one by one are not kept by Prometheus: the timeline's
bands come from `qos_disruption_open`, to the bucket.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from qos_agent.reports.figures import Band, Cell, FailedRun, Figures, Quantiles, Timeline, histogram_quantile
from qos_agent.reports.period import Window
from qos_agent.reports.sources.http import shown_url
from qos_agent.reports.sources.promql import EDGE_MS, RUNS, PromClient, deltas, plan, steps

FLAKY = "qos_journey_flaky_total"
BUCKETS = 'qos_journey_duration_seconds_bucket{lagged="false"}'  # on-time runs only
JOURNEY_BUCKETS = 'qos_journey_duration_seconds_bucket{lagged="false",kind!="uptime"}'
DISRUPTED = "qos_disruption_seconds_total"
HIDDEN = "qos_disruption_hidden_seconds_total"
FAMILIES = (RUNS, FLAKY, DISRUPTED, HIDDEN, BUCKETS)
PRESENCE_STEPS = 200  # first/last seen: the runs series looked up at this many instants of the window


def _le(tags: dict[str, str]) -> float:
    return float(tags.get("le", "inf").replace("+Inf", "inf"))


def _quantiles(buckets: dict[float, float]) -> Quantiles:
    pairs = sorted(buckets.items())
    return Quantiles(*(None if (v := histogram_quantile(q, pairs)) is None else v * 1000 for q in (0.5, 0.95, 0.99)))


class PrometheusSource:
    def __init__(self, url: str) -> None:
        self.client = PromClient(url)
        self.description = f"Prometheus {shown_url(self.client.url)}"

    def figures(self, window: Window) -> Figures:
        figures = Figures(window, latency_method="histogram")
        p = plan(self.client, window)
        with ThreadPoolExecutor(4) as pool:  # one family a request, several at once
            rose_by = dict(zip(FAMILIES, pool.map(lambda selector: deltas(self.client, selector, p), FAMILIES),
                               strict=True))
        for labels, rose in rose_by[RUNS].items():
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
            for labels, rose in rose_by[selector].items():
                cell = self._cell(figures, dict(labels))
                setattr(cell, add, getattr(cell, add) + (round(rose) if add == "flaky" else rose))
        per_cell: dict[tuple[str, str], dict[float, float]] = {}
        per_journey: dict[str, dict[float, float]] = {}
        for labels, rose in rose_by[BUCKETS].items():
            tags = dict(labels)
            key, le = (tags.get("journey", ""), tags.get("region", "")), _le(tags)
            per_cell.setdefault(key, {})[le] = per_cell.get(key, {}).get(le, 0.0) + rose
            if tags.get("kind", "journey") != "uptime":
                per_journey.setdefault(key[0], {})[le] = per_journey.get(key[0], {}).get(le, 0.0) + rose
        for key, buckets in per_cell.items():
            if key in figures.cells:
                figures.cells[key].latency = _quantiles(buckets)
        figures.journey_latency = {j: _quantiles(b) for j, b in per_journey.items()}
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

    def _objectives(self, figures: Figures, window: Window) -> None:
        """The agents' objective gauges at the window's end (or its start, for a journey gone since)."""
        for name, attr, scale in (("qos_journey_slo_success_ratio", "slo_success", 1.0),
                                  ("qos_journey_slo_latency_seconds", "slo_latency_ms", 1000.0)):
            found: dict[str, float] = {}
            for at in (window.from_ms, window.to_ms):  # the end wins
                found.update({dict(k).get("journey", ""): v * scale
                              for k, v in self.client.instant(f"max by (journey) ({name})", at).items()})
            for cell in figures.cells.values():
                if cell.journey in found:
                    setattr(cell, attr, found[cell.journey])

    def _presence(self, figures: Figures, window: Window) -> None:
        """When each journey × region's runs series came and went, to one step: instants evaluated back
        from the window's end (so a series born a second ago is seen); a series first seen at t was
        born after the step before (or within the hour each lookup reaches back), so its start is put there."""
        step = max(1000, (window.to_ms - window.from_ms) // PRESENCE_STEPS)
        aligned = Window(window.to_ms - (window.to_ms - window.from_ms) // step * step, window.to_ms, window.label)
        promql = f"count by (journey, region) (last_over_time({RUNS}[{EDGE_MS}ms]))"
        for tags, values in self.client.ranged(promql, aligned, step):
            cell = figures.cells.get((tags.get("journey", ""), tags.get("region", "")))
            if cell is not None and values:
                born = values[0][0] - min(step, EDGE_MS) if values[0][0] > aligned.from_ms else window.from_ms
                cell.seen(max(window.from_ms, born), values[-1][0])

    def disruptions(self, window: Window) -> None:
        return None  # Prometheus keeps their minutes, not the disruptions one by one

    def failed_runs(self, window: Window, limit: int) -> list[FailedRun] | None:
        """Prometheus keeps counts, not runs: a run's trace is found from an exemplar (docs/tracing.md)."""
        return None

    def timeline(self, window: Window, bucket_ms: int) -> Timeline:
        count = max(1, -(-(window.to_ms - window.from_ms) // bucket_ms))
        timeline = Timeline(window.from_ms, bucket_ms, count)
        for tags, rises in steps(self.client, RUNS, window, bucket_ms, count):
            series = timeline.series(tags.get("journey", ""), tags.get("region", ""), tags.get("kind", "journey"))
            name = {"passed": "passed", "degraded": "degraded"}.get(tags.get("outcome", ""), "failed")
            for i, rose in rises:
                setattr(series[i], name, getattr(series[i], name) + max(0, round(rose)))
        histograms: dict[tuple[str, str, int], dict[float, float]] = {}
        for tags, rises in steps(self.client, JOURNEY_BUCKETS, window, bucket_ms, count):
            for i, rose in rises:
                found = histograms.setdefault((tags.get("journey", ""), tags.get("region", ""), i), {})
                found[_le(tags)] = found.get(_le(tags), 0.0) + rose
        for (journey, region, i), buckets in histograms.items():
            p95 = histogram_quantile(0.95, sorted(buckets.items()))
            if (journey, region) in timeline.runs and p95 is not None:
                timeline.runs[(journey, region)][i].p95_ms = p95 * 1000
        timeline.bands = self._bands(window, bucket_ms, count)
        return timeline

    def _bands(self, window: Window, bucket_ms: int, count: int) -> list[Band]:
        """Disruptions to the bucket: open at any scrape in it (or at its end, for buckets shorter than a scrape)."""
        ends = Window(window.from_ms + bucket_ms, window.from_ms + count * bucket_ms, window.label)
        found: dict[tuple[str, str, str], list[int]] = {}
        b = f"{bucket_ms // 1000}s"
        promql = (f"max by (journey, region, hidden_from_uptime) (max_over_time(qos_disruption_open[{b}]) "
                  "or qos_disruption_open) == 1")
        for tags, values in self.client.ranged(promql, ends, bucket_ms):
            key = (tags.get("journey", ""), tags.get("region", ""), tags.get("hidden_from_uptime", ""))
            found.setdefault(key, []).extend(sorted({(t - window.from_ms) // bucket_ms - 1 for t, _ in values}))
        bands = []
        for (journey, region, hidden), indexes in sorted(found.items()):
            first = prev = indexes[0]
            for i in [*indexes[1:], -1]:
                if i != prev + 1:
                    begin, end = window.from_ms + first * bucket_ms, window.from_ms + (prev + 1) * bucket_ms
                    bands.append(Band(journey, region, begin, None if prev == count - 1 else end, hidden == "true"))
                    first = i
                prev = i
        return bands
