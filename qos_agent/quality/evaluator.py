"""Disruptions: when a journey's customers in one region stop getting what its objective promises.

Per journey × region the evaluator keeps the recent runs and applies three rules (rules.py: fast,
slow, latency). A disruption closes after `close_after` consecutive good runs (default 3), so a
flapping target is one long disruption, not dozens; the window restarts at the close.

Every disruption opened is closed exactly once (disruption.py, `close_reason`): `healed` by the
close rule, `removed` when a reload (`update_journeys`) no longer gives its journey to this agent
(removed, renamed, moved to another region or shard). With a `DisruptionFile` (openfile.py) the open
ones survive SIGTERM and `kill -9`: at start, one whose journey is no longer this agent's is closed
`removed`; the others are announced again (`start_points`) with their first open time, and the
first final run after the restart decides: a good one closes it (`healed`, at that run's time, not
after `close_after` runs), any other leaves it to the usual rule. The file is written only when a
disruption opens or closes (or its uptime verdict turns red), never per run.

`uptime_ok` says whether the uptime journeys of the same service (those checking one of the
journey's origins, or the one it names with `uptime: NAME`; config/uptime.py) were passing in the
region all through the disruption: a disruption with uptime_ok=true is one that uptime monitoring
never saw. With no such uptime journey, uptime_ok is absent and no hidden minutes are counted.
Memory is bounded: a window holds at most MAX_WINDOW_RUNS runs and only the last MAX_HISTORY closed
disruptions are kept. Time is taken from the results themselves, so tests can replay hours in
milliseconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from qos_agent.config.uptime import uptime_refs
from qos_agent.model import Journey, JourneyKind, JourneyResult, Outcome, Point
from qos_agent.quality.disruption import HEALED, REMOVED, Disruption, close_point, open_point
from qos_agent.quality.openfile import DisruptionFile, OpenEntry, Saved
from qos_agent.quality.rules import MAX_WINDOW_RUNS, Run, State, broken, window

MAX_HISTORY = 1_000  # closed disruptions kept for open_disruptions()/reports in memory
RECENT_CLOSES_MS = 10 * 60_000  # close points kept in the file, announced again after a kill -9
RECENT_CLOSES_MAX = 200
__all__ = ["HEALED", "MAX_WINDOW_RUNS", "REMOVED", "Disruption", "Evaluator"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Evaluator:
    """`owned`: the journeys this agent runs (default: all); `region`: this agent's (default: any);
    `store`: where open disruptions are kept across restarts (default: in memory only)."""

    def __init__(self, journeys: Iterable[Journey], agent: str, *, owned: Iterable[str] | None = None,
                 region: str | None = None, store: DisruptionFile | None = None, now_ms: int | None = None) -> None:
        self.agent = agent
        self.region = region
        self.store = store
        self.states: dict[tuple[str, str], State] = {}
        self.uptime: dict[tuple[str, str], bool] = {}  # (region, uptime journey) -> last run ok
        self.history: deque[Disruption] = deque(maxlen=MAX_HISTORY)
        self.recent: deque[Point] = deque(maxlen=RECENT_CLOSES_MAX)  # close points, kept in the file
        self._start: list[Point] = []
        self._dirty = False  # the file is behind memory (a write failed): written with the next change
        self._set_journeys(journeys, owned)
        if store is not None:
            self._restore(store.load(), _now_ms() if now_ms is None else now_ms)

    def _set_journeys(self, journeys: Iterable[Journey], owned: Iterable[str] | None) -> None:
        self.journeys = {j.name: j for j in journeys}
        self.refs = {name: uptime_refs(j, self.journeys) for name, j in self.journeys.items()}
        self.owned = set(self.journeys) if owned is None else set(owned) & set(self.journeys)

    def owns(self, journey: str, region: str) -> bool:
        """The journey runs here: configured, this agent's (region, shard) and, when set, in this region."""
        return journey in self.owned and (self.region is None or region == self.region)

    def update_journeys(self, journeys: Iterable[Journey], owned: Iterable[str] | None = None,
                        region: str | None = None, now_ms: int | None = None) -> list[Point]:
        """A reload: the new journeys, and a `removed` close for each open disruption whose journey is no
        longer this agent's (gone, renamed, moved to another region or shard): hand them to the sinks."""
        self._set_journeys(journeys, owned)
        if region is not None:
            self.region = region
        now = _now_ms() if now_ms is None else now_ms
        points = []
        for key in [k for k in self.states if not self.owns(*k)]:
            state = self.states.pop(key)  # a journey that comes back starts afresh
            if state.open is not None:
                points.append(self._close(state, max(now, state.last_ms, state.open.opened_ms), REMOVED))
        self._save(bool(points))
        return points

    def start_points(self) -> list[Point]:
        """Once, at start, what the file holds, for the sinks: after a `kill -9` the close points of the
        last minutes again (one may not have reached a sink), each disruption still open as it was
        first announced, and a `removed` close for each whose journey is no longer this agent's."""
        points, self._start = self._start, []
        return points

    def stop(self) -> None:
        """A clean stop, after the sinks were flushed: keep the hidden time counted so far, and mark
        the file clean, so the next start does not announce closes again."""
        self._save(True, clean=True)

    def _restore(self, saved: Saved, now_ms: int) -> None:
        if not saved.clean:  # a kill -9: a close may have been lost between the file and a sink's spool
            lately = [p for p in saved.closed if p.time_ms >= now_ms - RECENT_CLOSES_MS]
            self._start.extend(lately)
            self.recent.extend(lately)
        closes = []
        for entry in saved.open:
            d = Disruption.of_open_point(entry.point, entry.uptime_ok, entry.hidden_ms)
            state = State(open=d, last_ms=now_ms)  # the time the agent was down is not counted as hidden
            if self.owns(d.journey, d.region) and (d.journey, d.region) not in self.states:
                d.restored = True
                self.states[(d.journey, d.region)] = state
                self._start.append(entry.point)
            else:
                closes.append(self._close(state, max(now_ms, d.opened_ms), REMOVED))
        self._start.extend(closes)
        self._save(bool(closes) or not saved.clean)

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
        turned_red = False
        for r in results:
            if not r.final or r.journey not in self.owned or (self.region is not None and r.region != self.region):
                continue  # e.g. a run that ended after a reload took its journey away
            if r.kind is JourneyKind.UPTIME:
                self.uptime[(r.region, r.journey)] = r.outcome.ok
                if not r.outcome.ok:
                    for (journey, region), state in self.states.items():
                        if (region == r.region and state.open is not None and state.open.uptime_ok
                                and r.journey in self.refs.get(journey, ())):
                            state.open.uptime_ok = False
                            turned_red = True
            points.extend(self._observe_one(r))
        if points or turned_red:
            self._save(True)
        return points

    def _observe_one(self, r: JourneyResult) -> list[Point]:
        journey = self.journeys[r.journey]
        rules = journey.disruption
        state = self.states.setdefault((r.journey, r.region), State())
        ok = r.outcome.ok
        if state.open is not None and state.open.uptime_ok and self.uptime_ok(r.region, r.journey):
            state.open.hidden_ms += max(0, r.start_ms - state.last_ms)
        state.last_ms = r.start_ms
        state.runs.append(Run(r.start_ms, ok, r.duration_ms, r.lagged))
        horizon = r.start_ms - rules.window_s * 1000
        while state.runs and state.runs[0].time_ms < horizon:
            state.runs.popleft()
        state.failed_streak = 0 if ok else state.failed_streak + 1
        # Degraded only because the agent lagged is no verdict on the target: it counts as good.
        good = r.outcome is Outcome.PASSED or (r.outcome is Outcome.DEGRADED and r.lagged)
        state.good_streak = state.good_streak + 1 if good else 0
        if not ok:
            state.last_failure = (r.failed_step, str(r.error or ""), r.error_message, r.trace_id)

        d = state.open
        if d is None:
            reason = broken(journey, state)
            if reason:
                uptime = self.uptime_ok(r.region, r.journey) if journey.kind is JourneyKind.JOURNEY else False
                d = state.open = Disruption(r.journey, r.region, reason, r.start_ms, uptime, None, 0.0,
                                            *state.last_failure)
                alert = (journey.alert.severity, journey.alert.runbook) if journey.alert is not None else ("", "")
                d.opened = open_point(d, self.agent, journey.tags, window(state), alert)
                return [d.opened]
        elif state.good_streak >= rules.close_after or (d.restored and good):
            return [self._close(state, r.start_ms, HEALED)]
        else:
            d.restored = False  # the first run after the restart was not good: the usual rule from here
        return []

    def _close(self, state: State, time_ms: int, why: str) -> Point:
        d = state.open
        assert d is not None
        d.closed_ms, d.close_reason = time_ms, why
        point = close_point(d, time_ms, window(state), why)
        self.history.append(d)
        self.recent.append(point)
        state.open = None
        state.runs.clear()
        return point

    def _save(self, changed: bool, clean: bool = False) -> None:
        """Rewrite the file when something changed, or a failed write is pending (never per run)."""
        if self.store is None or not (changed or self._dirty):
            return
        newest = self.recent[-1].time_ms if self.recent else 0
        while self.recent and self.recent[0].time_ms < newest - RECENT_CLOSES_MS:
            self.recent.popleft()
        entries = [OpenEntry(d.opened, d.uptime_ok, d.hidden_ms) for d in self.open_disruptions()
                   if d.opened is not None]
        self._dirty = not self.store.save(Saved(entries, [] if clean else list(self.recent), clean))

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
