"""Runs each journey every `interval`, spread so that agents (and journeys) never fire in lockstep.

Each journey starts at a random offset within its interval and every tick gets a little jitter.
The jitter only ever shortens a gap (ticks come between interval − jitter and interval apart), so
two runs are never more than one interval apart and a hard fault is seen within two intervals.
A journey never has two runs at once: a tick that would overlap is skipped and counted. A global
semaphore caps runs in flight. Lag (how late a run started against its plan) is measured, because
a sample taken while the agent itself lagged measures the agent, not the target.

Shedding: while the event loop *stays* late (`overloaded()`, see looplag.py), a tick starts no run:
it is counted as `shed` and the journey waits for its next tick, so an overloaded agent measures
less rather than measuring itself. A warning with the reason is logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from qos_agent.language.text import Throttle
from qos_agent.model import Journey, JourneyResult

log = logging.getLogger(__name__)
_overlap_log = Throttle(60.0)

JITTER_SHARE = 0.05  # each tick comes up to 5 % of the interval early...
JITTER_MAX_S = 2.0  # ...and never more than 2 s
LAG_WINDOW = 1024
SHED_LOG_EVERY_S = 60.0


@dataclass(slots=True)
class SchedulerStats:
    started: int = 0
    skipped_overlaps: int = 0
    shed: int = 0  # ticks that started no run because the event loop stayed late
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))
    last_run_ms: dict[str, int] = field(default_factory=dict)
    last_outcome: dict[str, str] = field(default_factory=dict)

    def lag_p99_ms(self) -> float:
        if not self.lag_ms:
            return 0.0
        ordered = sorted(self.lag_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


RunJourney = Callable[[Journey], Awaitable[list[JourneyResult]]]
OnResults = Callable[[list[JourneyResult]], None]
Overloaded = Callable[[], bool]


class Scheduler:
    def __init__(self, journeys: Sequence[Journey], run: RunJourney, on_results: OnResults,
                 concurrency: int, rng: random.Random | None = None,
                 overloaded: Overloaded | None = None, lag_ms: Callable[[], float] | None = None) -> None:
        self.journeys = {j.name: j for j in journeys}
        self.run_journey = run
        self.on_results = on_results
        self.semaphore = asyncio.Semaphore(concurrency)
        self.rng = rng or random.Random()
        self.stats = SchedulerStats()
        self.overloaded = overloaded or (lambda: False)
        self.loop_lag_ms = lag_ms or (lambda: 0.0)  # for the shed warning's reason
        self._shed_logged_s = -SHED_LOG_EVERY_S
        self._shed_since_log = 0
        self._loops: dict[str, asyncio.Task[None]] = {}
        self.next_planned: dict[str, float] = {}  # journey -> its next tick (loop time): /healthz `next_run`
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    def start(self) -> None:
        for journey in self.journeys.values():
            self._start_loop(journey)

    def _start_loop(self, journey: Journey, first_delay_s: float | None = None) -> None:
        delay = self.rng.uniform(0, journey.interval_s) if first_delay_s is None else first_delay_s
        self.next_planned[journey.name] = asyncio.get_running_loop().time() + delay
        self._loops[journey.name] = asyncio.create_task(self._loop(journey.name, delay), name=f"sched-{journey.name}")

    def replace(self, journeys: Sequence[Journey]) -> None:
        """Swap the schedule (live reload): unchanged journeys keep their timing and runs.

        Unchanged means the same meaning (`Journey.same_meaning`): a comment, the key order or the
        line a journey starts on do not restart its timing; a new interval or step does."""
        new = {j.name: j for j in journeys}
        for name in list(self._loops):
            if name not in new or not new[name].same_meaning(self.journeys.get(name)):
                self._loops.pop(name).cancel()
                self.next_planned.pop(name, None)
        self.journeys = new
        for name, journey in new.items():
            if name not in self._loops:  # new or changed: a fresh random offset
                self._start_loop(journey)

    async def _loop(self, name: str, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        planned = self.next_planned.get(name, loop.time() + delay_s)
        while not self._stopping.is_set():
            journey = self.journeys[name]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, planned - loop.time()))
            if self._stopping.is_set():
                return
            if name in self._runs:
                self.stats.skipped_overlaps += 1
                if (more := _overlap_log.allow(name)) is not None:  # one line per journey per minute
                    log.warning("journey %s: previous run still in flight, tick skipped%s", name, more)
            elif self.overloaded():
                self._shed(name)
            else:
                self._runs[name] = asyncio.create_task(self._run(journey, planned), name=f"run-{name}")
            jitter = min(JITTER_SHARE * journey.interval_s, JITTER_MAX_S)
            planned += journey.interval_s - self.rng.uniform(0, jitter)
            self.next_planned[name] = planned

    def _shed(self, name: str) -> None:
        self.stats.shed += 1
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._shed_logged_s >= SHED_LOG_EVERY_S:
            log.warning("event loop late by %.0f ms (over agent.max_loop_lag, sustained): shed %d run(s), "
                        "e.g. journey %s, since the last warning rather than measure the agent's own delay "
                        "(%d shed in all; fewer journeys, a longer interval or another agent would help)",
                        self.loop_lag_ms(), self._shed_since_log, name, self.stats.shed)
            self._shed_logged_s = now
            self._shed_since_log = 0

    async def _run(self, journey: Journey, planned: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self.semaphore:
                self.stats.lag_ms.append(max(0.0, (loop.time() - planned) * 1000))
                self.stats.started += 1
                results = await self.run_journey(journey)
            if results:
                final = results[-1]
                self.stats.last_run_ms[journey.name] = final.start_ms
                self.stats.last_outcome[journey.name] = str(final.outcome)
                self.on_results(results)
        except asyncio.CancelledError:
            raise
        except Exception:  # the runner classifies failures; this is a bug, logged, never fatal
            log.exception("journey %s: run crashed", journey.name)
        finally:
            self._runs.pop(journey.name, None)

    @property
    def in_flight(self) -> int:
        return len(self._runs)

    @property
    def running(self) -> tuple[str, ...]:
        """The journeys with a run in flight (started, or waiting for a slot): read by /healthz, not per run."""
        return tuple(self._runs)

    async def stop(self, grace_s: float) -> None:
        """Stop scheduling, let runs in flight finish within the grace period, cancel the rest."""
        self._stopping.set()
        for task in self._loops.values():
            task.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)
        self._loops.clear()
        self.next_planned.clear()
        runs = list(self._runs.values())
        if runs:
            _, pending = await asyncio.wait(runs, timeout=grace_s)
            for task in pending:
                log.warning("run %s did not finish within the %.0fs grace period: cancelled", task.get_name(), grace_s)
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
