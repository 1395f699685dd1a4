"""Real Prometheus scraping two real agents in two regions: the demo's fault in one region opens a
disruption that Prometheus' own rule engine (deploy/prometheus/rules.yml, `for:` shortened) turns into
a firing JourneyDisruption there, and only there; a stopped agent becomes AgentDown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.demo import TWO_JOURNEY_AGENT as AGENT
from tests.support.demo import DemoProcess
from tests.support.health import AgentProcess
from tests.support.prometheus import PrometheusServer, needs_prometheus, short_rules
from tests.support.waiting import wait_for


def firing(prom: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"]


@needs_prometheus
def test_a_regional_fault_fires_journey_disruption_in_prometheus(tmp_path: Path) -> None:
    with DemoProcess() as eu_service, DemoProcess() as ap_service:
        agents: dict[str, AgentProcess] = {}
        try:
            for region, service in (("eu-west", eu_service), ("ap-south", ap_service)):
                home = tmp_path / region
                home.mkdir()
                (home / "journeys.yaml").write_text(AGENT.format(region=region, url=service.url))
                agents[region] = AgentProcess(home / "journeys.yaml", "--region", region, cwd=home, start_timeout=60).__enter__()
            targets = {region: a.url.removeprefix("http://") for region, a in agents.items()}
            prom = PrometheusServer(tmp_path / "prom", targets=list(targets.values()),
                                    rule_files=[short_rules(tmp_path / "rules.yml")])
            prom.root.mkdir()
            prom.start()
            try:
                # Summed over `lagged`: a run the agent's own late loop marked lagged is a third series.
                wait_for(lambda: len(prom.query(
                    'sum by (region) (qos_journey_runs_total{journey="checkout",outcome="passed"}) > 0')) == 2,
                    60, "both regions' checkout runs scraped")
                assert prom.query('qos_journey_slo_success_ratio{journey="checkout"}')[0]["value"][1] == "0.99"
                ap_service.add_faults(["path=/api/pay,status=503"])  # checkout breaks; /health stays 200
                opened = wait_for(lambda: prom.query(
                    'qos_disruption_open{region="ap-south",journey="checkout"} == 1'), 60, "the disruption scraped")
                assert opened[0]["metric"]["hidden_from_uptime"] == "true"
                alerts = wait_for(lambda: firing(prom, "JourneyDisruption"), 60, "JourneyDisruption firing")
                assert [(a["labels"]["journey"], a["labels"]["region"], a["labels"]["hidden_from_uptime"])
                        for a in alerts] == [("checkout", "ap-south", "true")]
                regional = wait_for(lambda: firing(prom, "JourneyFailingInManyRegions"), 60, "the regional alert")
                assert [(a["labels"]["scope"], a["labels"]["region"]) for a in regional] == [("regional", "ap-south")]
                # The healthy region shows none, neither as a series nor as an alert.
                assert prom.query('qos_disruption_open{region="eu-west"} == 1') == []
                assert all(a["labels"].get("region") != "eu-west" for a in prom.alerts())
                failures = prom.query('sum by (error) (qos_step_failures_total{region="ap-south",step="pay"})')
                assert [f["metric"]["error"] for f in failures] == ["status"]
                # An agent that stops answering is AgentDown, named by its target.
                agents.pop("eu-west").stop()
                down = wait_for(lambda: firing(prom, "AgentDown"), 60, "AgentDown firing")
                assert [a["labels"]["instance"] for a in down] == [targets["eu-west"]]
            finally:
                prom.stop()
        finally:
            for agent in agents.values():
                agent.stop()
