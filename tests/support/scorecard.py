"""Stores for the scorecard tests: real points from the real Evaluator, written by the real SqliteExporter.

Two hours of runs, one a minute, in two regions (one agent each): eu-west's checkout breaks for
twenty minutes while its /health stays green (a disruption hidden from uptime), us-east breaks with
its uptime check (a visible one), and checkout is slow (degraded) for a while in us-east. Journeys
carry the scorecard's metadata as the loader would (owner, customer_reason, weight tags).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from exporters.files.config import SqliteSpec
from exporters.files.sqlite import SqliteExporter
from qos_agent.delivery.points import result_points
from qos_agent.model import ErrorClass, Journey, JourneyKind, JourneyResult, Location, Point, Slo
from qos_agent.quality.evaluator import Evaluator
from tests.support import results as rb

LOC = Location("journeys.yaml", 1, 1)
ORIGIN = ("https://shop.example:443",)
CHECKOUT_TAGS = (("customer_reason", "pay for an order"), ("owner", "team-payments"), ("stage", "purchase"),
                 ("weight", "3"))
SEARCH_TAGS = (("customer_reason", "find a product"), ("owner", "team-discovery"))
CHECKOUT = Journey("checkout", (), 60.0, LOC, slo=Slo(success=0.995, latency_s=2.0), origins=ORIGIN,
                   tags=CHECKOUT_TAGS)
SEARCH = Journey("search", (), 60.0, LOC, slo=Slo(success=0.99, latency_s=1.0), origins=ORIGIN, tags=SEARCH_TAGS)
UPTIME = Journey("uptime", (), 60.0, LOC, kind=JourneyKind.UPTIME, origins=ORIGIN)
MIN = 60_000

JOURNEYS_YAML = """\
version: 1
agent: {interval: 60s}
journeys:
  - name: checkout
    owner: team-payments
    customer_reason: pay for an order
    weight: 3
    tags: {stage: purchase}
    slo: {success: 99.5%, latency: 2s}
    steps: [{name: pay, http: {url: "https://shop.example/pay"}}]
  - name: search
    owner: team-discovery
    customer_reason: find a product
    slo: {success: 99%, latency: 1s}
    steps: [{name: find, http: {url: "https://shop.example/find"}}]
  - name: uptime
    kind: uptime
    steps: [{name: health, http: {url: "https://shop.example/health"}}]
"""


def trace_of(journey: str, region: str, start_ms: int) -> str:
    """A run's trace id, derived from what it is (not from the rng, so the story's numbers stay put)."""
    return hashlib.md5(f"{journey}/{region}/{start_ms}".encode()).hexdigest()


def runs(start_ms: int, minutes: int = 120, rng: random.Random | None = None,
         regions: tuple[str, ...] = ("eu-west", "us-east"), lead: int = 0) -> list[JourneyResult]:
    """One run a minute of each journey in each region; the story's minutes come after `lead` good ones."""
    rng = rng or random.Random(11)
    out = []
    for at in range(lead + minutes):
        minute = at - lead
        for offset_s, region in ((7, "eu-west"), (23, "us-east")):
            if region not in regions:
                continue
            t = start_ms + at * MIN + offset_s * 1000
            agent = f"agent-{region}"
            hidden_fault = region == "eu-west" and 50 <= minute < 70  # checkout broken, /health green
            outage = region == "us-east" and 95 <= minute < 101  # everything down, uptime sees it
            slow = region == "us-east" and 20 <= minute < 30  # checkout passes, slower than 2 s
            out.append(rb.journey("uptime", [rb.failed("health", ErrorClass.CONNECT, "refused")] if outage
                                  else [rb.passed("health", rng.uniform(8, 20))],
                                  kind=JourneyKind.UPTIME, region=region, agent=agent, start_ms=t,
                                  trace_id=trace_of("uptime", region, t)))
            pay = (rb.failed("pay", ErrorClass.STATUS, "HTTP 503", status_code=503) if hidden_fault or outage
                   else rb.degraded("pay", rng.uniform(2100, 2600)) if slow
                   else rb.passed("pay", rng.uniform(250, 420) + (300 if region == "us-east" else 0)))
            out.append(rb.journey("checkout", [rb.passed("login", rng.uniform(60, 120)), pay], region=region,
                                  agent=agent, start_ms=t + 1000, tags=CHECKOUT_TAGS,
                                  trace_id=trace_of("checkout", region, t + 1000)))
            out.append(rb.journey("search", [rb.passed("find", rng.uniform(80, 200))], region=region, agent=agent,
                                  start_ms=t + 2000, tags=SEARCH_TAGS, trace_id=trace_of("search", region, t + 2000)))
    return out


def points_of(results: list[JourneyResult]) -> list[Point]:
    """Result points and the evaluator's disruption points, in time order."""
    evaluators: dict[str, Evaluator] = {}  # one per agent, as each agent runs its own
    points: list[Point] = []
    for r in sorted(results, key=lambda r: r.start_ms):
        evaluator = evaluators.setdefault(r.agent, Evaluator([CHECKOUT, SEARCH, UPTIME], r.agent))
        points += result_points(r)
        points += evaluator.observe([r])
    return points


async def write(path: Path, points: list[Point]) -> None:
    exporter = SqliteExporter(SqliteSpec(path=path, retention_s=1e10))
    try:
        await exporter.write(points)
    finally:
        await exporter.close()


async def store(path: Path, start_ms: int, **kw: object) -> list[Point]:
    points = points_of(runs(start_ms, **kw))  # type: ignore[arg-type]
    await write(path, points)
    return points
