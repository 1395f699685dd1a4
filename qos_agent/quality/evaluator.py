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

`uptime_ok` says whether the uptime journeys of the same service (those checking one of the
journey's origins, or the one it names with `uptime: NAME`; config/uptime.py) were passing in the
region all through the disruption: a disruption with uptime_ok=true is one that uptime monitoring
never saw. With no such uptime journey, uptime_ok is absent and no hidden minutes are counted.
Memory is bounded: a window holds at most MAX_WINDOW_RUNS runs and only the last MAX_HISTORY closed
disruptions are kept. Time is taken from the results themselves, so tests can replay hours in
milliseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from qos_agent.config.uptime import uptime_refs
from qos_agent.model import DisruptionRules, Journey, JourneyKind, JourneyResult, Outcome, Point

MAX_WINDOW_RUNS = 10_000  # per journey x region: a 30-minute window at one run a second is 1,800
MAX_HISTORY = 1_000  # closed disruptions kept for open_disruptions()/reports in memory


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
    uptime_ok: bool | None  # None: no uptime journey checks this service
    closed_ms: int | None = None
    hidden_ms: float = 0.0
    failed_step: str = ""  # of the last failed run: what an alert names
    error: str = ""
    error_message: str = ""


@dataclass(slots=True)
class _State:
    runs: deque[_Run] = field(default_factory=lambda: deque(maxlen=MAX_WINDOW_RUNS))
    failed_streak: int = 0
    good_streak: int = 0
    open: Disruption | None = None
    last_ms: int = 0
    last_failure: tuple[str, str, str] = ("", "", "")  # failed_step, error, error_message


class Evaluator:
    def __init__(self, journeys: Iterable[Journey], agent: str) -> None:
        self.agent = agent
        self.states: dict[tuple[str, str], _State] = {}
        self.uptime: dict[tuple[str, str], bool] = {}  # (region, uptime journey) -> last run ok
        self.history: deque[Disruption] = deque(maxlen=MAX_HISTORY)
        self.update_journeys(journeys)

    def update_journeys(self, journeys: Iterable[Journey]) -> None:
        self.journeys = {j.name: j for j in journeys}
        self.refs = {name: uptime_refs(j, self.journeys) for name, j in self.journeys.items()}

    def uptime_ok(self, region: str, journey: str) -> bool | None:
        """The journey's uptime journeys all pass now in the region; None when it has none.

        One that has not run yet in the region counts as not passing: green must be seen.
        """
        refs = self.refs.get(journey, ())
        if not refs:
            return None
        return all(self.uptime.get((region, name), False) for name in refs)

    def observe(self, results: Iterable[JourneyResult]) -> list[Point]:
        """Feed results (final attempts count); return the disruption points to export."""
        points: list[Point] = []
        for r in results:
            if not r.final or r.journey not in self.journeys:
                continue
            if r.kind is JourneyKind.UPTIME:
                self.uptime[(r.region, r.journey)] = r.outcome.ok
                if not r.outcome.ok:
                    for (journey, region), state in self.states.items():
                        if (region == r.region and state.open is not None
                                and r.journey in self.refs.get(journey, ())):
                            state.open.uptime_ok = False
            points.extend(self._observe_one(r))
        return points

    def _observe_one(self, r: JourneyResult) -> list[Point]:
        journey = self.journeys[r.journey]
        rules = journey.disruption
        state = self.states.setdefault((r.journey, r.region), _State())
        ok = r.outcome.ok
        if state.open is not None and state.open.uptime_ok and self.uptime_ok(r.region, r.journey):
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
        if not ok:
            state.last_failure = (r.failed_step, str(r.error or ""), r.error_message)

        if state.open is None:
            reason = self._broken(journey, state)
            if reason:
                uptime = self.uptime_ok(r.region, r.journey) if journey.kind is JourneyKind.JOURNEY else False
                state.open = Disruption(r.journey, r.region, reason, r.start_ms, uptime, None, 0.0,
                                        *state.last_failure)
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
        journey = self.journeys.get(d.journey)
        own = journey.tags if journey is not None else ()
        tags = tuple(sorted((("agent", self.agent), ("journey", d.journey), ("region", d.region),
                             ("state", which), *own)))
        fields: list[tuple[str, float | int | bool | str]] = [
            ("reason", d.reason),
            ("success_ratio", round(self._success_ratio(state), 4)),
            ("latency_p95_ms", round(self._p95(state), 3)),
            ("opened_ms", d.opened_ms),
        ]
        # What an alert needs to say (extra fields, never tags): the failing step and why, and the
        # journey's `alert: {severity, runbook}`.
        extra: tuple[tuple[str, str], ...] = (("failed_step", d.failed_step), ("error", d.error),
                                              ("error_message", d.error_message))
        if journey is not None and journey.alert is not None:
            extra += (("severity", journey.alert.severity), ("runbook", journey.alert.runbook))
        fields.extend((name, value) for name, value in extra if value)
        if d.uptime_ok is not None:
            fields.append(("uptime_ok", d.uptime_ok))
        if which == "close":
            fields.append(("duration_s", round((time_ms - d.opened_ms) / 1000, 3)))
            if d.uptime_ok is not None:
                fields.append(("hidden_minutes", round(d.hidden_ms / 60000, 3)))
        return Point("disruption", tags, tuple(fields), time_ms)

    def hidden_now(self, now_ms: int) -> list[tuple[str, str, float]]:
        """(journey, region, hidden ms) of each open disruption with an uptime journey, as of `now_ms`:
        what its close would count if the next run closed it now (the gap since the last run counts
        while uptime is still green, as `_observe_one` counts it)."""
        out = []
        for (journey, region), state in self.states.items():
            d = state.open
            if d is None or d.uptime_ok is None:
                continue
            live = max(0, now_ms - state.last_ms) if d.uptime_ok and self.uptime_ok(region, journey) else 0
            out.append((journey, region, d.hidden_ms + live))
        return out

    def open_disruptions(self) -> list[Disruption]:
        return [s.open for s in self.states.values() if s.open is not None]
