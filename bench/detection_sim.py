"""Replays journeys through the real Evaluator on a simulated clock: hours of runs in milliseconds.

Used by tests/test_evaluator.py (assertions) and bench/bench_detection.py (printed figures).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from qos_agent.model import (
    ErrorClass,
    Journey,
    JourneyKind,
    JourneyResult,
    Location,
    Outcome,
    Point,
    Slo,
    StepResult,
)
from qos_agent.quality.evaluator import Evaluator
from qos_agent.runloop.runner import journey_outcome
from qos_agent.runloop.scheduler import JITTER_MAX_S, JITTER_SHARE

LOC = Location("sim.yaml", 1, 1)
INTERVAL_S = 60.0
BASE_LATENCY_MS = 800.0


def sim_journey(name: str = "checkout", kind: JourneyKind = JourneyKind.JOURNEY) -> Journey:
    return Journey(name=name, steps=(), interval_s=INTERVAL_S, location=LOC, kind=kind,
                   slo=Slo(success=0.995, latency_s=2.0))


def run(journey: Journey, t_ms: int, ok: bool, latency_ms: float, region: str = "ap-south") -> JourneyResult:
    step = StepResult(step="pay", probe="http", outcome=Outcome.PASSED if ok else Outcome.FAILED,
                      duration_ms=latency_ms, error=None if ok else ErrorClass.STATUS)
    outcome, failed = journey_outcome([step], latency_ms, journey.slo.latency_s)  # the runner's own rules
    return JourneyResult(journey=journey.name, kind=journey.kind, region=region, agent="sim", run_id=f"r{t_ms}",
                         start_ms=t_ms, outcome=outcome, duration_ms=latency_ms, steps=[step],
                         failed_step=failed.step if failed else "", error=step.error)


def run_times(rng: random.Random, count: int) -> list[int]:
    """Run start times as the scheduler makes them: a random offset, then interval minus jitter."""
    jitter = min(JITTER_SHARE * INTERVAL_S, JITTER_MAX_S)
    t = rng.uniform(0, INTERVAL_S)
    out = []
    for _ in range(count):
        out.append(int(t * 1000))
        t += INTERVAL_S - rng.uniform(0, jitter)
    return out


@dataclass
class Trial:
    detected_after_s: float | None  # from the fault's start to the disruption's open point
    opens: int
    uptime_ok: bool


def hard_fault_trial(rng: random.Random) -> Trial:
    """Healthy for a random while, then every run fails from a random instant on; uptime stays green."""
    journey, uptime = sim_journey(), sim_journey("uptime", JourneyKind.UPTIME)
    ev = Evaluator([journey, uptime], "sim")
    times = run_times(rng, 60)
    uptime_times = run_times(rng, 60)
    fault_at_ms = rng.uniform(times[10], times[40])
    events = sorted([(t, journey) for t in times] + [(t, uptime) for t in uptime_times], key=lambda e: e[0])
    opened: list[Point] = []
    for t, j in events:
        ok = j is uptime or t < fault_at_ms
        for point in ev.observe([run(j, t, ok, BASE_LATENCY_MS * rng.uniform(0.7, 1.3))]):
            if point.tag("state") == "open":
                opened.append(point)
    first = opened[0] if opened else None
    return Trial(detected_after_s=(first.time_ms - fault_at_ms) / 1000 if first else None, opens=len(opened),
                 uptime_ok=bool(first and first.field("uptime_ok")))


def healthy_noise_disruptions(rng: random.Random, runs: int = 1000, failure_rate: float = 0.001) -> tuple[int, int]:
    """Healthy runs with ±30 % latency noise and rare isolated single failures: (disruptions, failures)."""
    journey = sim_journey()
    ev = Evaluator([journey], "sim")
    opens = failures = 0
    previous_failed = False
    for t in run_times(rng, runs):
        fail = not previous_failed and rng.random() < failure_rate
        failures += fail
        previous_failed = fail
        points = ev.observe([run(journey, t, not fail, BASE_LATENCY_MS * rng.uniform(0.7, 1.3))])
        opens += sum(1 for p in points if p.tag("state") == "open")
    return opens, failures


def flapping_disruptions(rng: random.Random, runs: int = 200) -> tuple[int, int]:
    """A target failing every other run, then healed: (opens, closes)."""
    journey = sim_journey()
    ev = Evaluator([journey], "sim")
    opens = closes = 0
    for i, t in enumerate(run_times(rng, runs + 10)):
        ok = i >= runs or i % 2 == 0
        for p in ev.observe([run(journey, t, ok, BASE_LATENCY_MS)]):
            opens += p.tag("state") == "open"
            closes += p.tag("state") == "close"
    return opens, closes
