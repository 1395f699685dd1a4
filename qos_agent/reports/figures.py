"""What every source gives the scorecard: the same plain figures, whatever was queried to get them.

A source (SQLite store, InfluxDB, Prometheus; reports/sources/) reads one window into `Figures`:
per journey × region the final runs and their outcomes, the latency quantiles of on-time runs
(lagged runs stay out: their durations hold the agent's own delay), and the minutes disruptions were
open. The scorecard (reports/scorecard.py) turns two of them (this period and the one before) into
indicators, so the arithmetic of an indicator lives in one place for every source.

Quantiles are nearest-rank (the value at rank ceil(p/100 · n), a duration really measured) where
the source has the durations (SQLite, InfluxDB), and Prometheus' `histogram_quantile` estimate
(linear inside the bucket) where it has only buckets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from qos_agent.reports.period import Window

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class Quantiles:
    """p50/p95/p99 of on-time final runs in ms; None where there were none."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @classmethod
    def of_sorted(cls, values: Sequence[float]) -> Quantiles:
        return cls(*(nearest_rank(values, p) for p in PERCENTILES))


def rank(n: int, p: int) -> int:
    """The 1-based nearest rank of the p-th percentile of n values: ceil(n·p/100), in integers."""
    return max(1, (n * p + 99) // 100)


def nearest_rank(sorted_values: Sequence[float], p: int) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(rank(len(sorted_values), p), len(sorted_values)) - 1]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs, +Inf last; None when empty.

    Linear interpolation inside the bucket holding the rank; the first bucket starts at 0; a rank in
    the +Inf bucket answers the highest finite bound (as Prometheus does)."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    target = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= target:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (target - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return ordered[-2][0]


@dataclass(slots=True)
class Cell:
    """One journey in one region over one window (every agent of the region added up)."""

    journey: str
    region: str
    kind: str = "journey"
    owner: str = ""
    customer_reason: str = ""
    weight: str = ""  # the tag's text; the scorecard parses it
    agents: set[str] = field(default_factory=set)
    runs: int = 0
    successes: int = 0  # passed or degraded
    degraded: int = 0
    flaky: int = 0
    lagged: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    latency: Quantiles = field(default_factory=Quantiles)
    disrupted_s: float = 0.0
    hidden_s: float = 0.0
    disruptions: int = 0
    slo_success: float | None = None  # what the source itself knows of the objective (Prometheus' gauges)
    slo_latency_ms: float | None = None

    def seen(self, first_ms: int | None, last_ms: int | None) -> None:
        if first_ms is not None:
            self.first_ms = first_ms if self.first_ms is None else min(self.first_ms, first_ms)
        if last_ms is not None:
            self.last_ms = last_ms if self.last_ms is None else max(self.last_ms, last_ms)


@dataclass(slots=True)
class Figures:
    window: Window
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    journey_latency: dict[str, Quantiles] = field(default_factory=dict)  # all regions together
    latency_method: str = "nearest-rank"  # or "histogram" (Prometheus: an estimate inside a bucket)

    def cell(self, journey: str, region: str) -> Cell:
        found = self.cells.get((journey, region))
        if found is None:
            found = self.cells[(journey, region)] = Cell(journey, region)
        return found


@dataclass(slots=True)
class Bucket:
    """Final runs in one time bucket of the timeline; p95 of the on-time ones."""

    passed: int = 0
    degraded: int = 0
    failed: int = 0
    p95_ms: float | None = None

    @property
    def runs(self) -> int:
        return self.passed + self.degraded + self.failed


@dataclass(frozen=True, slots=True)
class FailedRun:
    """One failed final run (a journey point), for the page's "Failed runs" with its trace."""

    time_ms: int
    journey: str
    region: str
    agent: str
    failed_step: str
    error: str
    error_message: str
    trace_id: str


@dataclass(frozen=True, slots=True)
class Disruption:
    """One disruption of one agent, paired from its open and close points (reports/disruptions.py)."""

    journey: str
    region: str
    agent: str
    start_ms: int
    end_ms: int | None  # None: still open
    reason: str
    uptime_ok: bool | None  # the plain uptime check stayed green all along (the close's verdict when closed)
    success_ratio: float | None
    latency_p95_ms: float | None
    hidden_minutes: float | None = None  # minutes open while uptime was green (known at close)
    failed_step: str = ""  # the open point's: the last failed run before it opened
    error: str = ""
    trace_id: str = ""  # that run's trace (docs/tracing.md): where the on-call engineer goes next

    def duration_s(self, now_ms: int) -> float:
        return ((self.end_ms if self.end_ms is not None else now_ms) - self.start_ms) / 1000


@dataclass(frozen=True, slots=True)
class Band:
    """A disruption drawn across the timeline."""

    journey: str
    region: str
    start_ms: int
    end_ms: int | None  # None: still open at the window's end
    hidden: bool | None  # uptime monitoring stayed green (None: no uptime check compared)
    reason: str = ""


@dataclass(slots=True)
class Timeline:
    start_ms: int
    bucket_ms: int
    count: int
    runs: dict[tuple[str, str], list[Bucket]] = field(default_factory=dict)  # journeys (not uptime)
    uptime: dict[str, list[Bucket]] = field(default_factory=dict)  # region -> its uptime checks
    bands: list[Band] = field(default_factory=list)

    def index(self, t_ms: int) -> int:
        return min(self.count - 1, max(0, (t_ms - self.start_ms) // self.bucket_ms))

    def series(self, journey: str, region: str, kind: str) -> list[Bucket]:
        found = self.uptime.setdefault(region, []) if kind == "uptime" else self.runs.setdefault((journey, region), [])
        if not found:
            found.extend(Bucket() for _ in range(self.count))
        return found
