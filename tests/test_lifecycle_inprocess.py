"""The agent's life, in process (issue 23): a seeded random sequence of reloads (journeys added, removed,
renamed, moved to another region or shard, comment-only edits), restarts (SIGTERM and kill -9: a new
agent from the same state_dir) and faults on and off, with the disruption invariants of
tests/support/lifecycle.py checked after every event.

The agent is real (`Agent.run`, its reload, its evaluator and the file it keeps); only the runs are
made up: each round, every journey of the agent gets one result, failed while its target is broken,
on a simulated clock a minute apart. A kill -9 is an agent whose evaluator is not told to stop (the
file stays as the last open or close left it, which is what a kill leaves: docs/deploy.md).

Replay one seed: QOS_LIFE_SEED=1234 pytest tests/test_lifecycle_inprocess.py. More random seeds:
QOS_LIFE_RUNS=50. Seeds that ever failed stay in REGRESSIONS.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from qos_agent.config.loader import load_config
from qos_agent.model import JourneyKind, JourneyResult, Outcome, Point, StepResult
from qos_agent.runloop.agent import Agent
from tests.support.lifecycle import AGENT, REGION, Event, Ledger, Life, events, render

EVENTS = 80
ROUND_MS = 60_000
# Seeds that once failed, replayed by every run. None has failed on a correct evaluator yet; these
# caught a deliberately broken one while this test was written (named), so they keep those paths.
REGRESSIONS = [
    887102,  # a reload that moved a journey away closed nothing
    654520,  # a comment-only reload lost a journey's phase (equality by location)
    295392,  # a restart forgot the open disruptions
    484399, 454662, 417546,  # healed while down: not closed by the first run after the restart
    346674,  # a heal closed with close_reason removed
    375172,  # a restart did not announce the open disruptions again
    32964, 590262,  # renamed / moved away while the agent was down: not closed at start
]


def seeds() -> list[int]:
    if os.environ.get("QOS_LIFE_SEED"):
        return [int(os.environ["QOS_LIFE_SEED"])]
    fresh = random.SystemRandom()
    return [*REGRESSIONS, *(fresh.randrange(10**6) for _ in range(int(os.environ.get("QOS_LIFE_RUNS", "5"))))]


class InProcess:
    """One agent at a time in this process, on `path`; `told` collects every disruption point announced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.told: list[Point] = []
        self.clock_ms = time.time_ns() // 1_000_000
        self.agent: Agent | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        agent = Agent(load_config(self.path, env={}), str(self.path))
        agent.listen_override = ""
        agent.listeners.append(lambda _results, points: self.told.extend(points))
        self.agent, self.task = agent, asyncio.create_task(agent.run(handle_signals=False))
        async with asyncio.timeout(20):  # `Agent._run` starts the loop timer, the sinks, announces, schedules
            while agent.runner.looplag._handle is None and not self.task.done():  # without yielding between
                await asyncio.sleep(0.01)
        if self.task.done():
            await self.task  # raises what stopped it

    async def stop(self, kill: bool) -> None:
        assert self.agent is not None and self.task is not None
        if kill:
            self.agent.evaluator.stop = lambda: None  # type: ignore[method-assign]
        self.agent.stop_event.set()
        await asyncio.wait_for(self.task, 30)
        self.agent = self.task = None

    def phases(self) -> dict[str, Any]:
        assert self.agent is not None
        return dict(self.agent.scheduler._loops)

    def reload(self, text: str) -> None:
        assert self.agent is not None
        self.path.write_text(text)
        self.agent.reload()
        assert self.agent.reload_error == "", self.agent.reload_error

    def runs(self, life: Life, rounds: int) -> None:
        assert self.agent is not None
        for _ in range(rounds):
            self.clock_ms += ROUND_MS
            for name in life.ours():
                self.agent.on_results([result(name, self.clock_ms, life.is_broken(name))])


def result(journey: str, start_ms: int, broken: bool) -> JourneyResult:
    outcome = Outcome.FAILED if broken else Outcome.PASSED
    step = StepResult(step="get", probe="http", outcome=outcome, duration_ms=5.0)
    return JourneyResult(journey=journey, kind=JourneyKind.JOURNEY, region=REGION, agent=AGENT,
                         run_id=f"r{start_ms}", start_ms=start_ms, outcome=outcome, duration_ms=5.0, steps=[step],
                         failed_step="get" if broken else "")


async def live(seed: int, tmp_path: Path) -> tuple[int, int]:
    """Play one seeded life; return (events, invariant checks). Raises AssertionError naming the event."""
    path = tmp_path / "journeys.yaml"
    life, ledger = Life(), Ledger()
    path.write_text(render(life))
    driver = InProcess(path)
    await driver.start()
    ledger.check(Event("restart"), list(driver.told), life, Life(), None)  # the first start: nothing to tell
    played = 0
    try:
        for e in events(seed, EVENTS):
            before = _copy(life)
            life.apply(e)
            seen = len(driver.told)
            phases_before = driver.phases()
            if e.kind == "runs":
                driver.runs(before, e.rounds)
            elif e.kind == "restart":
                await driver.stop(kill=e.flag)
                if e.edit is not None:
                    driver.path.write_text(render(life))  # changed while the agent was down
                await driver.start()
            elif e.kind != "fault":  # a reload
                driver.reload(render(life))
            phases = (phases_before, driver.phases()) if e.kind != "restart" else None
            try:
                ledger.check(e, driver.told[seen:], life, before, phases)
            except AssertionError as failure:
                raise AssertionError(f"seed {seed}, event {played + 1} ({e}): {failure}") from None
            played += 1
    finally:
        if driver.agent is not None:
            await driver.stop(kill=False)
    return played, ledger.checks


def _copy(life: Life) -> Life:
    return Life(list(life.names), dict(life.target), set(life.away), life.shard, set(life.broken), life.layout,
                life.made)


@pytest.mark.parametrize("seed", seeds())
async def test_a_seeded_life_keeps_every_disruption_promise(seed: int, tmp_path: Path) -> None:
    print(f"\nlifecycle seed {seed} (replay: QOS_LIFE_SEED={seed})")
    played, checks = await live(seed, tmp_path)
    print(f"seed {seed}: {played} events, {checks} invariant checks passed")
    assert played == EVENTS


def test_the_generator_makes_every_kind_of_event() -> None:
    drawn = [e for seed in range(5) for e in events(seed, EVENTS)]
    assert {e.kind for e in drawn} == {"runs", "fault", "restart", "add", "remove", "rename", "move", "shard", "relayout"}
    restarts = [e for e in drawn if e.kind == "restart"]
    assert {e.flag for e in restarts} == {True, False} and any(e.edit for e in restarts)
    assert events(7, EVENTS) == events(7, EVENTS)  # a seed replays
