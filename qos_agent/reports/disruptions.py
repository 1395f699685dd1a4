"""Disruption points (open/close) into intervals, and the minutes of them inside a window.

SQLite and InfluxDB hold the evaluator's `disruption` points; both sources pair them here, so both
count minutes the same way. Pairs are matched per journey × region × agent in time order; a second
`open` while one is open continues it, a `close` with no open one is ignored.

Minutes inside a window: the part of [opened, closed) inside it. A disruption still open counts up
to the last run seen of its journey × region × agent (the last evidence; an agent that stopped does
not keep a disruption growing), as `qos_disruption_seconds_total` does on the Prometheus path.
Hidden minutes: all of them when uptime monitoring stayed green all along (`uptime_ok`), else the
close's `hidden_minutes` spread evenly over the disruption; none without an uptime check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from qos_agent.reports.figures import Cell, Disruption
from qos_agent.reports.period import Window

FieldMap = Mapping[str, object]


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def pair(points: Iterable[tuple[int, FieldMap, FieldMap]]) -> list[Disruption]:
    """(time_ms, tags, fields) of disruption points, oldest first -> disruptions, oldest first."""
    open_: dict[tuple[str, str, str], Disruption] = {}
    done: list[Disruption] = []
    for time_ms, tags, fields in points:
        key = (str(tags.get("journey", "")), str(tags.get("region", "")), str(tags.get("agent", "")))
        state = tags.get("state")
        if state == "open" and key not in open_:
            uptime = fields.get("uptime_ok")
            open_[key] = Disruption(*key, start_ms=int(time_ms), end_ms=None, reason=str(fields.get("reason", "")),
                                    uptime_ok=uptime if isinstance(uptime, bool) else None,
                                    success_ratio=_float(fields.get("success_ratio")),
                                    latency_p95_ms=_float(fields.get("latency_p95_ms")),
                                    failed_step=str(fields.get("failed_step") or ""),
                                    error=str(fields.get("error") or ""), trace_id=str(fields.get("trace_id") or ""))
        elif state == "close" and key in open_:
            d = open_.pop(key)
            uptime = fields.get("uptime_ok", d.uptime_ok)
            done.append(replace(d, end_ms=int(time_ms), uptime_ok=uptime if isinstance(uptime, bool) else None,
                                hidden_minutes=_float(fields.get("hidden_minutes"))))
    return sorted([*done, *open_.values()], key=lambda d: d.start_ms)


@dataclass(frozen=True, slots=True)
class Minutes:
    disrupted_s: float
    hidden_s: float


def inside(d: Disruption, window: Window, last_run_ms: int | None) -> Minutes | None:
    """The disruption's seconds (and hidden seconds) inside the window; None when it does not touch it."""
    end = d.end_ms
    if end is None:
        end = max(d.start_ms, min(last_run_ms if last_run_ms is not None else d.start_ms, window.to_ms))
    lo, hi = max(d.start_ms, window.from_ms), min(end, window.to_ms)
    if d.start_ms >= window.to_ms or end < window.from_ms or (hi <= lo and not window.contains(d.start_ms)):
        return None
    seconds = max(0, hi - lo) / 1000
    if d.uptime_ok is None:
        hidden = 0.0
    elif d.uptime_ok:
        hidden = seconds
    else:
        whole = max(0.001, (end - d.start_ms) / 1000)
        hidden = min(seconds, (d.hidden_minutes or 0.0) * 60 * seconds / whole)
    return Minutes(seconds, hidden)


LastRun = Callable[[Disruption], int | None]


def add_minutes(cells: Callable[[str, str], Cell], disruptions: Iterable[Disruption], window: Window,
                last_run: LastRun) -> None:
    """Add each disruption's minutes in the window to its cell (`cells(journey, region)` -> a Cell)."""
    for d in disruptions:
        minutes = inside(d, window, last_run(d) if d.end_ms is None else None)
        if minutes is None:
            continue
        cell = cells(d.journey, d.region)
        cell.disrupted_s += minutes.disrupted_s
        cell.hidden_s += minutes.hidden_s
        cell.disruptions += 1
