"""docs/examples/mixed-journey.yaml (dns -> tcp -> http) through the agent's own Runner, against a
real dnsmasq and the demo service; its points carry each kind's fields."""

from __future__ import annotations

from pathlib import Path

from qos_agent.config.loader import load_config
from qos_agent.delivery.points import result_points
from qos_agent.demo import start_demo
from qos_agent.runloop.runner import Runner
from tests.support.dnsmasq import dnsmasq

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "mixed-journey.yaml"


async def test_mixed_journey_passes_against_dnsmasq_and_the_demo() -> None:
    runner_demo, url = await start_demo("127.0.0.1", 0, https=False)
    try:
        with dnsmasq() as dns_port:
            env = {"SHOP_URL": url, "SHOP_PORT": url.rsplit(":", 1)[1], "DNS_SERVER": f"127.0.0.1:{dns_port}"}
            config = load_config(EXAMPLE, env=env)
            journey = config.journey("mixed")
            assert journey is not None
            runner = Runner(config)
            try:
                result = await runner.run_once(journey)
            finally:
                await runner.close()
    finally:
        await runner_demo.cleanup()
    assert str(result.outcome) == "passed", [(s.step, s.error_message) for s in result.steps]
    points = {p.tag("step"): dict(p.fields) for p in result_points(result) if p.measurement == "step"}
    assert points["resolve"]["rcode"] == "NOERROR" and points["resolve"]["answers"] == "127.0.0.1"
    assert points["resolve"]["dns_ms"] > 0
    assert points["port"]["connect_ms"] > 0 and points["port"]["ttfb_ms"] > 0
    assert points["login"]["status_code"] == 200
    assert {p.tag("probe") for p in result_points(result) if p.measurement == "step"} == {"dns", "tcp", "http"}
