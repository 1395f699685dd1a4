"""Exact counter differences over a window from Prometheus' HTTP API, at the cost of a few lookups.

How much a counter rose in [from, to) is its value at `to` minus its value at `from` (0 for a series
born inside the window): two lookups per series (its last sample in the hour before each edge, so a
series written only when it changes — remote write, a journey that runs every 10 minutes — is found
too), whatever the window's length, and exact where `increase()` extrapolates to the window's edges.
Two cases need more, and only they pay for reading the window's samples:
- a series that stopped inside the window (a journey renamed or removed, an agent gone; through
  remote write also a series that seldom changes): it is not there at `to`, so its last value comes
  from `last_over_time` over the window, asked only for series like it (its journeys, and its
  outcome, lagged and kind values where those narrow it); the series API lists what existed in the
  window from the index, without reading samples;
- an agent that restarted inside the window: its counters began again from 0, so its series take
  `increase()` (which handles the reset), rounded. A restart shows as a reset of the agent's own
  `qos_agent_runs_started_total` (one series per agent, cheap); where Prometheus holds no agent
  series (remote write only), the journey counters are checked for resets themselves.
A value at `to` below the one at `from` is a reset across the window's edge: the new value counts.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from qos_agent.reports.errors import ReportError
from qos_agent.reports.period import Window
from qos_agent.reports.sources.http import request_json, shown_url

Labels = tuple[tuple[str, str], ...]
RUNS = "qos_journey_runs_total"
AGENT_RUNS = "qos_agent_runs_started_total"
EDGE_MS = 3_600_000  # a counter's value at an edge: its last sample in the hour before it


def seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def span(window: Window) -> str:
    return f"{max(1, (window.to_ms - window.from_ms) // 1000)}s"


def restrict(selector: str, label: str, values: set[str]) -> str:
    """`metric{a="b"}` with `label=~"v1|v2"` added (values matched literally)."""
    quoted = (re.escape(v).replace("\\", "\\\\").replace('"', '\\"') for v in sorted(values))
    matcher = f'{label}=~"' + "|".join(quoted) + '"'
    if selector.endswith("}"):
        return selector[:-1] + ("," if not selector.endswith("{}") else "") + matcher + "}"
    return selector + "{" + matcher + "}"


class PromClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ReportError(f"--url {url!r} is not an http(s) URL of Prometheus (e.g. http://prometheus:9090)")

    def call(self, path: str, form: dict[str, str]) -> Any:
        doc = request_json(self.url + path, form, what="Prometheus", base=self.url)
        if not isinstance(doc, dict) or doc.get("status") != "success":
            error = doc.get("error", doc) if isinstance(doc, dict) else doc
            raise ReportError(f"Prometheus at {shown_url(self.url)} refused a query: {error}")
        return doc["data"]

    def instant(self, promql: str, at_ms: int) -> dict[Labels, float]:
        found = self.call("/api/v1/query", {"query": promql, "time": seconds(at_ms)})["result"]
        return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in found}

    def ranged(self, promql: str, window: Window, step_ms: int) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
        form = {"query": promql, "start": seconds(window.from_ms), "end": seconds(window.to_ms),
                "step": f"{max(1, step_ms) / 1000:.3f}"}
        return [(r["metric"], [(round(float(t) * 1000), float(v)) for t, v in r["values"]])
                for r in self.call("/api/v1/query_range", form)["result"]]

    def series(self, selector: str, window: Window) -> list[dict[str, str]]:
        """Series that held samples in the window, from the index (no samples read)."""
        form = {"match[]": selector, "start": seconds(window.from_ms), "end": seconds(window.to_ms)}
        found: list[dict[str, str]] = self.call("/api/v1/series", form)
        return found


def _key(labels: Labels) -> Labels:
    return tuple(kv for kv in labels if kv[0] != "__name__")


def at_edge(client: PromClient, selector: str, window: Window, at_ms: int) -> dict[Labels, float]:
    """Each series' last value in the hour (at most the window) before `at_ms`."""
    reach = min(EDGE_MS, max(1, window.to_ms - window.from_ms))
    return {_key(k): v for k, v in client.instant(f"last_over_time({selector}[{reach}ms])", at_ms).items()}


@dataclass(frozen=True, slots=True)
class Plan:
    """What a window's counter differences need beyond the two lookups: the agents that restarted."""

    window: Window
    restarts: dict[tuple[str, str], list[int]]  # (label, value) naming an agent -> when its counters reset (ms)


def _resets_by(client: PromClient, probe: str, window: Window, at_ms: int) -> int:
    found = client.instant(f"resets({probe}[{max(1, at_ms - window.from_ms + 1)}ms])", at_ms)
    return round(max(found.values(), default=0.0))


def locate(client: PromClient, probe: str, window: Window) -> list[int]:
    """When one series reset inside the window: for the k-th reset, the first instant at which
    `resets()` over [from, t] counts k, i.e. the first sample after it (bisection to the millisecond,
    over that one series only: some 30 cheap lookups a reset)."""
    times: list[int] = []
    for k in range(1, _resets_by(client, probe, window, window.to_ms) + 1):
        lo, hi = times[-1] if times else window.from_ms, window.to_ms
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _resets_by(client, probe, window, mid) >= k else (mid, hi)
        times.append(hi)
    return times


def _matcher(labels: Labels) -> str:
    quoted = ((k, v.replace("\\", "\\\\").replace('"', '\\"')) for k, v in labels if k != "__name__")
    return "{" + ",".join(f'{k}="{v}"' for k, v in quoted) + "}"


def plan(client: PromClient, window: Window) -> Plan:
    d = span(window)
    probes: dict[tuple[str, str], str] = {}
    if client.series(AGENT_RUNS, window):  # scraped agents: their own counter shows a restart
        for labels in client.instant(f"resets({AGENT_RUNS}[{d}]) > 0", window.to_ms):
            probes[("instance", dict(labels).get("instance", ""))] = AGENT_RUNS + _matcher(labels)
    else:  # remote write only: the journey counter of each agent that reset most often
        found = client.instant(f"resets({RUNS}[{d}]) > 0", window.to_ms)
        for labels, _ in sorted(found.items(), key=lambda kv: kv[1]):
            probes[("agent", dict(labels).get("agent", ""))] = RUNS + _matcher(labels)
    return Plan(window, {key: locate(client, probe, window) for key, probe in probes.items()})


NARROWING = ("region", "agent", "outcome", "lagged", "kind", "le")  # labels that may narrow a selector
LONG_MS = 400 * 86_400_000  # how far back a counter's last value is looked for: what a store may keep


def narrow(selector: str, some: list[dict[str, str]], every: list[dict[str, str]]) -> str:
    """`selector` cut down to series like `some` (of `every` it matches): their journeys, and their
    values of the labels in NARROWING where those leave others out."""
    narrowed = restrict(selector, "journey", {g.get("journey", "") for g in some})
    for label in NARROWING:
        values = {g.get(label, "") for g in some}
        if "" not in values and values != {e.get(label, "") for e in every}:
            narrowed = restrict(narrowed, label, values)
    return narrowed


def stopped(client: PromClient, selector: str, window: Window, alive: set[Labels]) -> str | None:
    """A selector for the series that held samples in the window but have none near its end."""
    listed = [_key(tuple(sorted(s.items()))) for s in client.series(selector, window)]
    gone = [dict(s) for s in listed if s not in alive]
    return narrow(selector, gone, [dict(s) for s in listed]) if gone else None


def values_before(client: PromClient, selector: str, keys: list[Labels], every: list[Labels],
                  at_ms: int) -> dict[Labels, float]:
    """The last values before `at_ms` of series (`keys`, of `every` series of the family) that have none
    in the hour before it: a counter that seldom changes (through remote write it has a sample only
    when it does), or a series born later (it has none: cheap to ask, narrowed to series like it)."""
    if not keys:
        return {}
    wanted = set(keys)
    narrowed = narrow(selector, [dict(k) for k in keys], [dict(k) for k in every])
    found = client.instant(f"last_over_time({narrowed}[{LONG_MS}ms])", at_ms)
    return {_key(k): v for k, v in found.items() if _key(k) in wanted}


def _rose(ends: dict[Labels, float], bases: dict[Labels, float]) -> dict[Labels, float]:
    return {k: (v - bases.get(k, 0.0) if v >= bases.get(k, 0.0) else v) for k, v in ends.items()}


def deltas(client: PromClient, selector: str, p: Plan) -> dict[Labels, float]:
    """Per series: how much the counter rose inside the plan's window."""
    window = p.window
    end = at_edge(client, selector, window, window.to_ms)
    start = at_edge(client, selector, window, window.from_ms)
    gone = stopped(client, selector, window, set(end))
    if gone is not None:
        late = client.instant(f"last_over_time({gone}[{span(window)}])", window.to_ms)
        end.update({_key(k): v for k, v in late.items() if _key(k) not in end})
    start.update(values_before(client, selector, [k for k in end if k not in start], list(end), window.from_ms))
    out = _rose(end, start)
    for (label, value), times in p.restarts.items():
        # Counted segment by segment: each ends with the last value before a reset, the next begins at 0.
        mine = restrict(selector, label, {value})
        edges = [window.from_ms, *times, window.to_ms]
        total: dict[Labels, float] = {}
        for i, (a, b) in enumerate(itertools.pairwise(edges)):
            at = b if i == len(times) else b - 1
            ends = {_key(k): v for k, v in client.instant(f"last_over_time({mine}[{max(1, at - a)}ms])", at).items()}
            for k, v in _rose(ends, start if i == 0 else {}).items():
                total[k] = total.get(k, 0.0) + v
        out.update(total)
    return out


def steps(client: PromClient, selector: str, window: Window, bucket_ms: int, count: int
          ) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    """Per series, how much the counter rose in each bucket: its values at the buckets' edges,
    differenced (a drop is a reset: the new value counts; a series born in a bucket counts from 0;
    an edge without a recent sample carries the last value on). Exact at any bucket size, unlike
    `increase()` over a range shorter than two scrapes."""
    edges = Window(window.from_ms, window.from_ms + count * bucket_ms, window.label)
    found = [(tags, dict(values)) for tags, values in
             client.ranged(f"last_over_time({selector}[{EDGE_MS}ms])", edges, bucket_ms)]
    keyed = [(_key(tuple(sorted(tags.items()))), tags, at) for tags, at in found]
    before = values_before(client, selector, [k for k, _, at in keyed if window.from_ms not in at],
                           [k for k, _, _ in keyed], window.from_ms)
    out = []
    for key, tags, at in keyed:
        last = at.get(window.from_ms, before.get(key))
        rises = []
        for i in range(count):
            end = at.get(window.from_ms + (i + 1) * bucket_ms)
            if end is not None:
                rises.append((i, end - last if last is not None and end >= last else end))
                last = end
        out.append((tags, rises))
    return out
