"""The rules' memory of one journey × region, and the three rules that open a disruption.

- fast: `open_after` consecutive failed runs (default 2), so a hard outage opens within two intervals;
- slow: the failure share over `window` (default 30 min) breaks the `slo.success` objective, with at
  least `min_failures` failures in it, so one isolated failure never opens anything;
- latency: the p95 over the window is above `slo.latency` (with at least `min_runs` runs).
Lagged runs (taken while the agent's own event loop was late, `lagged=true`) still count for success
and failure, but never for the latency rule: their duration includes the agent's delay.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from qos_agent.model import DisruptionRules, Journey
from qos_agent.quality.disruption import Disruption

MAX_WINDOW_RUNS = 10_000  # per journey x region: a 30-minute window at one run a second is 1,800


@dataclass(slots=True)
class Run:
    time_ms: int
    ok: bool
    duration_ms: float
    lagged: bool = False


@dataclass(slots=True)
class State:
    runs: deque[Run] = field(default_factory=lambda: deque(maxlen=MAX_WINDOW_RUNS))
    failed_streak: int = 0
    good_streak: int = 0
    open: Disruption | None = None
    last_ms: int = 0
    last_failure: tuple[str, str, str, str] = ("", "", "", "")  # failed_step, error, error_message, trace_id


def broken(journey: Journey, state: State) -> str:
    """The rule the window breaks now, in words ("" when none)."""
    rules: DisruptionRules = journey.disruption
    if state.failed_streak >= rules.open_after:
        return f"{state.failed_streak} consecutive failed runs"
    failures = sum(1 for run in state.runs if not run.ok)
    ratio = success_ratio(state)
    if failures >= rules.min_failures and ratio < journey.slo.success:
        return f"success {ratio:.1%} below objective {journey.slo.success:.1%}"
    measured = sum(1 for run in state.runs if not run.lagged)
    if journey.slo.latency_s is not None and measured >= rules.min_runs:
        p95 = p95_ms(state)
        if p95 > journey.slo.latency_s * 1000:
            return f"p95 {p95:.0f} ms above objective {journey.slo.latency_s * 1000:.0f} ms"
    return ""


def success_ratio(state: State) -> float:
    return sum(1 for run in state.runs if run.ok) / len(state.runs) if state.runs else 1.0


def p95_ms(state: State) -> float:
    durations = sorted(run.duration_ms for run in state.runs if run.ok and not run.lagged)
    if not durations:
        return 0.0
    return durations[min(len(durations) - 1, round(0.95 * (len(durations) - 1)))]


def window(state: State) -> tuple[float, float] | None:
    """(success ratio, p95 ms) over the window; None when it holds no run (a close at start)."""
    return (success_ratio(state), p95_ms(state)) if state.runs else None
