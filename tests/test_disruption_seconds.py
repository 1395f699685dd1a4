"""`qos_disruption_seconds_total`: the seconds disruptions were open (the scorecard's disrupted minutes).

It moves with the runs of the disrupted journey × region, not with the clock, so a scrape of
`/metrics` and the remote-write sink show the same value, and it ends at the close's `duration_s`.
"""

from __future__ import annotations

from pathlib import Path

from qos_agent.config.loader import load_config
from qos_agent.delivery.points import points_of
from qos_agent.model import JourneyKind
from qos_agent.ops.journey_metrics import JourneyMetrics
from qos_agent.quality.evaluator import Evaluator
from qos_agent.sinks.series import DISRUPTION_SECONDS, JourneySeries
from tests.support.health import sample
from tests.support.results import failed, journey, passed

T0_MS = 1_800_000_000_000
CONFIG = """\
version: 1
agent: {region: eu-west, name: a1}
defaults: {disruption: {open_after: 2, close_after: 3}}
journeys:
  - name: uptime
    kind: uptime
    steps: [{name: health, http: {url: "http://127.0.0.1:1/health"}}]
  - name: checkout
    owner: team-payments
    customer_reason: pay for an order
    steps: [{name: pay, http: {url: "http://127.0.0.1:1/pay"}}]
"""


def test_open_seconds_follow_the_runs_and_end_at_the_close(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(CONFIG)
    config = load_config(path, env={})
    evaluator = Evaluator(config.journeys, "a1")
    metrics = JourneyMetrics()
    metrics.configure(config.journeys, "eu-west", "a1")
    remote = JourneySeries()  # what the remote-write sink keeps
    checkout = dict(next(j for j in config.journeys if j.name == "checkout").tags)
    c = {"journey": "checkout", "region": "eu-west", "agent": "a1", **checkout}

    def feed(at_s: float, ok: bool) -> float | None:
        tags = tuple(sorted(checkout.items()))
        runs = [journey("uptime", [passed("health")], agent="a1", kind=JourneyKind.UPTIME,
                        start_ms=T0_MS + int(at_s * 1000)),
                journey("checkout", [passed("pay") if ok else failed("pay")], agent="a1",
                        start_ms=T0_MS + int(at_s * 1000), tags=tags)]
        disruptions = evaluator.observe(runs)
        metrics.observe(runs, disruptions)
        remote.observe_all([*points_of(runs), *disruptions])
        scraped = sample(metrics.render(T0_MS + 10**9).decode(), "qos_disruption_seconds_total", **c)
        labels = next((k for k in remote.values[DISRUPTION_SECONDS]), None)
        assert scraped == (None if labels is None else remote.values[DISRUPTION_SECONDS][labels])  # both paths
        return scraped

    assert feed(0, False) is None  # one failure: nothing open yet, no series
    assert feed(10, False) == 0  # the second opens it (at this run's start)
    assert feed(20, False) == 10
    assert feed(30, True) == 20  # still open: good runs close it after three
    assert feed(40, True) == 30
    assert feed(50, True) == 40  # closed: 40 s, the close's duration_s
    assert feed(60, True) == 40  # no disruption: it holds
    assert feed(70, False) == 40 and feed(80, False) == 40  # the next one opens at 80 s...
    assert feed(95, False) == 55  # ...and adds on top
