"""Detection quality of the evaluator, on a simulated clock (figures printed, see docs/benchmarks.md)."""

from __future__ import annotations

import random
from dataclasses import replace

from bench.detection_sim import (
    INTERVAL_S,
    flapping_disruptions,
    hard_fault_trial,
    healthy_noise_disruptions,
    run,
    sim_journey,
)
from qos_agent.model import DisruptionRules, Journey, JourneyKind, Point
from qos_agent.quality.evaluator import MAX_WINDOW_RUNS, Evaluator


def test_hard_fault_opens_within_two_intervals_in_every_trial() -> None:
    rng = random.Random(42)
    trials = [hard_fault_trial(rng) for _ in range(200)]
    delays = [t.detected_after_s for t in trials]
    assert all(d is not None for d in delays)
    worst = max(d for d in delays if d is not None)
    print(f"\nhard fault: 200/200 detected; worst {worst:.1f}s = {worst / INTERVAL_S:.2f} intervals")
    assert worst <= 2 * INTERVAL_S  # two runs, never more than an interval apart
    assert all(t.opens == 1 for t in trials)  # one disruption per fault, however long it lasts
    assert all(t.uptime_ok for t in trials)  # uptime stayed green: a hidden disruption


def test_no_false_disruptions_in_healthy_noise() -> None:
    rng = random.Random(7)
    noise = [healthy_noise_disruptions(rng) for _ in range(20)]
    opens, failures, streaks = (sum(n.opens for n in noise), sum(n.failures for n in noise),
                                sum(n.streaks for n in noise))
    print(f"\nhealthy: 20,000 runs, ±30% latency, {failures} random failures ({streaks} back to back) "
          f"-> {opens} disruptions")
    assert failures > 5  # the noise really contained failures
    assert opens == streaks  # only two failures in a row open one; isolated ones never do


def test_noise_harness_sees_disruptions_when_rules_are_too_eager() -> None:
    """The same noise through a one-failure rule opens disruptions: the test above can fail."""
    noise = [healthy_noise_disruptions(random.Random(7), rules=DisruptionRules(open_after=1)) for _ in range(3)]
    assert sum(n.opens for n in noise) > 0
    assert all(n.opens == n.streaks for n in noise)  # each isolated failure opened (and closed) one


def test_flapping_target_is_one_disruption() -> None:
    opens, closes = flapping_disruptions(random.Random(3))
    print(f"\nflapping every other run for 200 runs: {opens} disruption(s), closed {closes}")
    assert (opens, closes) == (1, 1)


def test_latency_rule_opens_and_good_runs_close() -> None:
    journey = sim_journey()
    ev = Evaluator([journey], "sim")
    states = []
    for i in range(30):
        latency = 3000.0 if i < 15 else 500.0
        states += [(i, p.tag("state"), p.field("reason")) for p in ev.observe([run(journey, i * 60_000, True, latency)])]
    assert states[0][0] == 9 and states[0][1] == "open" and "p95" in str(states[0][2])
    assert states[1][0] == 17 and states[1][1] == "close"


def test_uptime_failure_during_disruption_makes_it_visible() -> None:
    journey, uptime = sim_journey(), sim_journey("uptime", JourneyKind.UPTIME)
    ev = Evaluator([journey, uptime], "sim")
    ev.observe([run(uptime, 0, True, 10)])
    points = []
    for i in range(1, 4):
        points += ev.observe([run(journey, i * 60_000, False, 10)])
    ev.observe([run(uptime, 200_000, False, 10)])
    for i in range(4, 8):
        points += ev.observe([run(journey, i * 60_000, True, 10)])
    opened, closed = points
    assert opened.field("uptime_ok") is True
    assert closed.field("uptime_ok") is False
    assert closed.field("hidden_minutes") == 1.0  # from the open (2 min) to the uptime failure (3.3 min)


def test_regions_are_separate() -> None:
    journey = sim_journey()
    ev = Evaluator([journey], "sim")
    points = []
    for i in range(4):
        points += ev.observe([run(journey, i * 60_000, False, 10, region="ap-south"),
                              run(journey, i * 60_000, True, 10, region="eu-west")])
    assert [p.tag("region") for p in points] == ["ap-south"]


# Uptime per service: a journey is compared with the uptime journeys of its own origin(s), or the one
# it names with `uptime: NAME`; with none, uptime_ok is absent and no hidden minutes are counted.
SHOP, API = ("https://shop.example:443",), ("https://api.example:443",)


def _disrupt(ev: Evaluator, journey: Journey, uptime_runs: dict[Journey, bool]) -> list[Point]:
    """Uptime journeys run once, then the journey fails until it opens, then heals until it closes."""
    for u, ok in uptime_runs.items():
        ev.observe([run(u, 0, ok, 10)])
    points: list[Point] = []
    for i in range(1, 4):
        points += ev.observe([run(journey, i * 60_000, False, 10)])
    for i in range(4, 8):
        points += ev.observe([run(journey, i * 60_000, True, 10)])
    return points


def test_uptime_of_another_service_does_not_count() -> None:
    journey = sim_journey(origins=SHOP)
    api_health = sim_journey("api-health", JourneyKind.UPTIME, origins=API)
    opened, closed = _disrupt(Evaluator([journey, api_health], "sim"), journey, {api_health: True})
    assert opened.field("uptime_ok") is None and closed.field("uptime_ok") is None  # nothing checks the shop
    assert closed.field("hidden_minutes") is None


def test_only_the_same_origins_uptime_is_asked() -> None:
    journey = sim_journey(origins=SHOP)
    shop_health = sim_journey("shop-health", JourneyKind.UPTIME, origins=SHOP)
    api_health = sim_journey("api-health", JourneyKind.UPTIME, origins=API)
    ev = Evaluator([journey, shop_health, api_health], "sim")
    opened, closed = _disrupt(ev, journey, {shop_health: True, api_health: False})
    assert opened.field("uptime_ok") is True and closed.field("uptime_ok") is True  # the API's outage is another story
    assert closed.field("hidden_minutes") == 4.0


def test_a_named_uptime_journey_wins_over_origins() -> None:
    journey = replace(sim_journey(origins=SHOP), uptime="api-health")
    shop_health = sim_journey("shop-health", JourneyKind.UPTIME, origins=SHOP)
    api_health = sim_journey("api-health", JourneyKind.UPTIME, origins=API)
    ev = Evaluator([journey, shop_health, api_health], "sim")
    opened, _ = _disrupt(ev, journey, {shop_health: True, api_health: False})
    assert opened.field("uptime_ok") is False


def test_evaluator_memory_is_bounded() -> None:
    journey = sim_journey(rules=DisruptionRules(window_s=10 * 86400))
    ev = Evaluator([journey], "sim")
    for i in range(MAX_WINDOW_RUNS + 500):
        ev.observe([run(journey, i * 1000, True, 10)])
    (state,) = ev.states.values()
    assert len(state.runs) == MAX_WINDOW_RUNS


def test_lagged_runs_count_for_failures_but_not_for_latency() -> None:
    journey = sim_journey()
    ev = Evaluator([journey], "sim")
    opened: list[tuple[int, str]] = []
    for i in range(40):
        r = run(journey, i * 60_000, True, 3000.0)  # 1.5× the objective: the agent's own delay...
        r.lagged, r.loop_lag_ms = True, 2900.0  # ...as its loop-lag mark says
        opened += [(i, str(p.field("reason"))) for p in ev.observe([r])]
    assert opened == []  # lagged samples never open a latency disruption
    for i in range(40, 42):
        r = run(journey, i * 60_000, False, 3000.0)
        r.lagged = True
        opened += [(i, str(p.field("reason"))) for p in ev.observe([r])]
    assert opened == [(41, "2 consecutive failed runs")]  # but their failures still count
    # Runs degraded only while lagged close it like passing ones.
    closed = []
    for i in range(42, 45):
        r = run(journey, i * 60_000, True, 3000.0)
        r.lagged = True
        closed += [p.tag("state") for p in ev.observe([r])]
    assert closed == ["close"]
