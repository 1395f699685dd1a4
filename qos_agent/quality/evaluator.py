"""Disruptions: when a journey's customers in one region stop getting what its objective promises.

Per journey × region the evaluator keeps the recent runs and applies three rules:
- fast: `open_after` consecutive failed runs (default 2), so a hard outage opens within two intervals;
- slow: the failure share over `window` (default 30 min) breaks the `slo.success` objective, with at
  least `min_failures` failures in it, so one isolated failure never opens anything;
- latency: the p95 over the window is above `slo.latency` (with at least `min_runs` runs).
Lagged runs (taken while the agent's own event loop was late, `lagged=true`) still count for success
and failure, but never for the latency rule: their duration includes the agent's delay.
A disruption closes after `close_after` consecutive good runs (default 3), so a flapping target is
one long disruption, not dozens; the window restarts at the close.

`uptime_ok` says whether the region's `kind: uptime` journeys were passing all through the
disruption: a disruption with uptime_ok=true is one that uptime monitoring never saw. Time is taken
from the results themselves, so tests can replay hours in milliseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from qos_agent.model import DisruptionRules, Journey, JourneyKind, JourneyResult, Outcome, Point


@dataclass(slots=True)
class _Run:
    time_ms: int
    ok: bool
    duration_ms: float
    lagged: bool = False


@dataclass(slots=True)
class Disruption:
    journey: str
    region: str
    reason: str
    opened_ms: int
    uptime_ok: bool
    closed_ms: int | None = None
    hidden_ms: float = 0.0


@dataclass(slots=True)
class _State:
    runs: deque[_Run] = field(default_factory=deque)
    failed_streak: int = 0
    good_streak: int = 0
    open: Disruption | None = None
    last_ms: int = 0


class Evaluator:
    def __init__(self, journeys: Iterable[Journey], agent: str) -> None:
        self.journeys = {j.name: j for j in journeys}
        self.agent = agent
        self.states: dict[tuple[str, str], _State] = {}
        self.uptime: dict[tuple[str, str], bool] = {}  # (region, uptime journey) -> last run ok
        self.history: list[Disruption] = []

    def update_journeys(self, journeys: Iterable[Journey]) -> None:
        self.journeys = {j.name: j for j in journeys}

    def uptime_ok(self, region: str) -> bool:
        """All of the region's uptime journeys pass now (False when there are none to ask)."""
        states = [ok for (r, _), ok in self.uptime.items() if r == region]
        return bool(states) and all(states)

    def observe(self, results: Iterable[JourneyResult]) -> list[Point]:
        """Feed results (final attempts count); return the disruption points to export."""
        points: list[Point] = []
        for r in results:
            if not r.final or r.journey not in self.journeys:
                continue
            if r.kind is JourneyKind.UPTIME:
                self.uptime[(r.region, r.journey)] = r.outcome.ok
                if not r.outcome.ok:
                    for (_, region), state in self.states.items():
                        if region == r.region and state.open is not None:
                            state.open.uptime_ok = False
            points.extend(self._observe_one(r))
        return points

    def _observe_one(self, r: JourneyResult) -> list[Point]:
        journey = self.journeys[r.journey]
        rules = journey.disruption
        state = self.states.setdefault((r.journey, r.region), _State())
        ok = r.outcome.ok
        if state.open is not None and state.open.uptime_ok and self.uptime_ok(r.region):
            state.open.hidden_ms += max(0, r.start_ms - state.last_ms)
        state.last_ms = r.start_ms
        state.runs.append(_Run(r.start_ms, ok, r.duration_ms, r.lagged))
        horizon = r.start_ms - rules.window_s * 1000
        while state.runs and state.runs[0].time_ms < horizon:
            state.runs.popleft()
        state.failed_streak = 0 if ok else state.failed_streak + 1
        # Degraded only because the agent lagged is no verdict on the target: it counts as good.
        good = r.outcome is Outcome.PASSED or (r.outcome is Outcome.DEGRADED and r.lagged)
        state.good_streak = state.good_streak + 1 if good else 0

        if state.open is None:
            reason = self._broken(journey, state)
            if reason:
                uptime = self.uptime_ok(r.region) if journey.kind is JourneyKind.JOURNEY else False
                state.open = Disruption(r.journey, r.region, reason, r.start_ms, uptime)
                return [self._point(state, "open", r.start_ms)]
        elif state.good_streak >= rules.close_after:
            state.open.closed_ms = r.start_ms
            point = self._point(state, "close", r.start_ms)
            self.history.append(state.open)
            state.open = None
            state.runs.clear()
            return [point]
        return []

    @classmethod
    def _broken(cls, journey: Journey, state: _State) -> str:
        rules: DisruptionRules = journey.disruption
        if state.failed_streak >= rules.open_after:
            return f"{state.failed_streak} consecutive failed runs"
        failures = sum(1 for run in state.runs if not run.ok)
        ratio = cls._success_ratio(state)
        if failures >= rules.min_failures and ratio < journey.slo.success:
            return f"success {ratio:.1%} below objective {journey.slo.success:.1%}"
        measured = sum(1 for run in state.runs if not run.lagged)
        if journey.slo.latency_s is not None and measured >= rules.min_runs:
            p95 = cls._p95(state)
            if p95 > journey.slo.latency_s * 1000:
                return f"p95 {p95:.0f} ms above objective {journey.slo.latency_s * 1000:.0f} ms"
        return ""

    @staticmethod
    def _success_ratio(state: _State) -> float:
        return sum(1 for run in state.runs if run.ok) / len(state.runs) if state.runs else 1.0

    @staticmethod
    def _p95(state: _State) -> float:
        durations = sorted(run.duration_ms for run in state.runs if run.ok and not run.lagged)
        if not durations:
            return 0.0
        return durations[min(len(durations) - 1, round(0.95 * (len(durations) - 1)))]

    def _point(self, state: _State, which: str, time_ms: int) -> Point:
        d = state.open
        assert d is not None
        tags = (("agent", self.agent), ("journey", d.journey), ("region", d.region), ("state", which))
        fields: list[tuple[str, float | int | bool | str]] = [
            ("reason", d.reason),
            ("success_ratio", round(self._success_ratio(state), 4)),
            ("latency_p95_ms", round(self._p95(state), 3)),
            ("uptime_ok", d.uptime_ok),
            ("opened_ms", d.opened_ms),
        ]
        if which == "close":
            fields.append(("duration_s", round((time_ms - d.opened_ms) / 1000, 3)))
            fields.append(("hidden_minutes", round(d.hidden_ms / 60000, 3)))
        return Point("disruption", tags, tuple(fields), time_ms)

    def open_disruptions(self) -> list[Disruption]:
        return [s.open for s in self.states.values() if s.open is not None]
