"""The scheduler: spread start offsets, interval, no overlapping runs of a journey, a global cap."""

from __future__ import annotations

import asyncio
import itertools
import random

from qos_agent.model import Journey, JourneyKind, JourneyResult, Location, Outcome
from qos_agent.runloop.scheduler import Scheduler

LOC = Location("t.yaml", 1, 1)


def journey(name: str, interval_s: float) -> Journey:
    return Journey(name=name, steps=(), interval_s=interval_s, location=LOC)


def result(j: Journey) -> JourneyResult:
    return JourneyResult(journey=j.name, kind=JourneyKind.JOURNEY, region="r", agent="a", run_id="x",
                         start_ms=0, outcome=Outcome.PASSED, duration_ms=1.0, steps=[])


async def test_runs_every_interval_with_spread_start() -> None:
    """Checked on the planned tick times (each start less its own measured lateness), so that a busy
    machine's timer slack cannot fail it; the lateness itself is checked on its own, loosely."""
    loop = asyncio.get_running_loop()
    planned: dict[str, list[float]] = {}
    t0 = loop.time()
    s: Scheduler

    async def run(j: Journey) -> list[JourneyResult]:
        late_s = s.stats.lag_ms[-1] / 1000  # appended for this very start, just before the call
        planned.setdefault(j.name, []).append(loop.time() - t0 - late_s)
        return [result(j)]

    got: list[JourneyResult] = []
    journeys = [journey(f"j{i}", 0.2) for i in range(20)]
    s = Scheduler(journeys, run, got.extend, concurrency=50, rng=random.Random(7))
    s.start()
    await asyncio.sleep(1.0)
    await s.stop(grace_s=1.0)
    firsts = sorted(v[0] for v in planned.values())
    assert len(firsts) == 20
    assert firsts[-1] < 0.2 + 0.005  # every journey starts within its first interval...
    assert firsts[-1] - firsts[0] > 0.1  # ...at spread offsets, not in lockstep
    for times in planned.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.19 - 0.002 < g < 0.2 + 0.002 for g in gaps), gaps  # the interval less up to 5 % jitter
    assert len(got) == sum(len(v) for v in planned.values())
    assert s.stats.lag_p99_ms() < 250


async def test_overlapping_tick_is_skipped_and_counted() -> None:
    running = 0
    most = 0

    async def slow(j: Journey) -> list[JourneyResult]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.35)
        running -= 1
        return [result(j)]

    s = Scheduler([journey("slow", 0.1)], slow, lambda r: None, concurrency=10, rng=random.Random(1))
    s.start()
    await asyncio.sleep(1.0)
    await s.stop(grace_s=1.0)
    assert most == 1
    assert s.stats.skipped_overlaps >= 4


async def test_global_concurrency_cap() -> None:
    running = 0
    most = 0

    async def run(j: Journey) -> list[JourneyResult]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.2)
        running -= 1
        return [result(j)]

    s = Scheduler([journey(f"j{i}", 0.1) for i in range(30)], run, lambda r: None, concurrency=4,
                  rng=random.Random(2))
    s.start()
    await asyncio.sleep(0.6)
    await s.stop(grace_s=1.0)
    assert most == 4
    assert s.stats.lag_p99_ms() > 50  # waiting for a slot shows up as lag


async def test_stop_lets_runs_finish_within_grace_and_cancels_the_rest() -> None:
    finished: list[str] = []

    async def run(j: Journey) -> list[JourneyResult]:
        await asyncio.sleep(0.2 if j.name == "quick" else 5.0)
        finished.append(j.name)
        return [result(j)]

    got: list[JourneyResult] = []
    s = Scheduler([journey("quick", 10), journey("stuck", 10)], run, got.extend, concurrency=5)
    s._loops = {}
    for j in s.journeys.values():
        s._start_loop(j, first_delay_s=0.0)
    await asyncio.sleep(0.05)
    assert s.in_flight == 2
    loop = asyncio.get_running_loop()
    t = loop.time()
    await s.stop(grace_s=0.5)
    assert loop.time() - t < 1.0
    assert finished == ["quick"]
    assert [r.journey for r in got] == ["quick"]
    assert s.in_flight == 0


async def test_replace_keeps_unchanged_journeys_and_adds_new_ones() -> None:
    seen: list[str] = []

    async def run(j: Journey) -> list[JourneyResult]:
        seen.append(j.name)
        return [result(j)]

    a, b = journey("a", 0.1), journey("b", 0.1)
    s = Scheduler([a, b], run, lambda r: None, concurrency=5, rng=random.Random(3))
    s.start()
    await asyncio.sleep(0.25)
    loop_a = s._loops["a"]
    s.replace([a, journey("c", 0.1)])
    assert s._loops["a"] is loop_a and "b" not in s._loops
    seen.clear()
    await asyncio.sleep(0.3)
    await s.stop(grace_s=1.0)
    assert "c" in seen and "a" in seen and "b" not in seen


async def test_next_planned_is_the_tick_that_comes_and_a_reload_keeps_it_unless_the_journey_changed() -> None:
    """`next_planned` (/healthz `next_run`) is the phase token a real-process test reads from outside:
    it is the time the next tick comes, unchanged until then, and a reload that keeps a journey keeps it."""
    loop = asyncio.get_running_loop()
    ticks: dict[str, list[float]] = {}

    async def run(j: Journey) -> list[JourneyResult]:
        ticks.setdefault(j.name, []).append(loop.time())
        return [result(j)]

    a, b = journey("a", 0.3), journey("b", 0.3)
    s = Scheduler([a, b], run, lambda r: None, concurrency=5, rng=random.Random(5))
    s.start()
    planned = dict(s.next_planned)
    assert set(planned) == {"a", "b"} and all(0 <= t - loop.time() <= 0.3 for t in planned.values())
    await asyncio.sleep(0.05)
    s.replace([a, journey("b", 0.4)])  # a: the same meaning; b: a new interval, re-planned
    assert s.next_planned["a"] == planned["a"] and s.next_planned["b"] != planned["b"]
    await asyncio.sleep(0.35)
    await s.stop(grace_s=1.0)
    assert abs(ticks["a"][0] - planned["a"]) < 0.05  # the tick came when it said
    assert s.next_planned == {}
