"""docs/prometheus.md, "Prometheus + Alertmanager in 10 minutes", started as written (issue 27).

The section's three YAML files are taken from the doc; only ports and paths are changed, and each
change must find its text, so the doc and this test cannot drift apart. The demo service, the two
agents (eu-west, ap-south) with their Alertmanager sink, a real Prometheus with deploy/prometheus/rules.yml
and a real Alertmanager with a recording webhook receiver; then one regional fault. The receiver must
get exactly one firing JourneyDisruption per journey and region, though the sink and the rule both raise
it; the rule's regional alert is muted by the doc's inhibit rule; no burn alert is raised. And when the
two copies' labels differ, the doc's inhibit rule keeps one notification.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.alertmanager import AlertmanagerServer, Receiver, require_alertmanager
from tests.support.demo import DemoProcess
from tests.support.health import AgentProcess
from tests.support.influx import free_port
from tests.support.prometheus import PROMTOOL, RULES, PrometheusServer, needs_prometheus, needs_promtool
from tests.support.waiting import wait_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "prometheus.md"
SECTION = ("## Prometheus + Alertmanager in 10 minutes", "### Which route")
REGIONS = ("eu-west", "ap-south")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def doc_files() -> dict[str, str]:
    """{file name: text} of the section's YAML blocks, each named by its first line's comment."""
    text = DOC.read_text()
    section = text[text.index(SECTION[0]):text.index(SECTION[1])]
    files = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        name = re.match(r"# (\S+)", block)
        assert name, block[:80]
        files[name.group(1)] = block
    assert set(files) == {"journeys.yaml", "prometheus.yml", "alertmanager.yml"}, set(files)
    return files


def changed(text: str, *pairs: tuple[str, str]) -> str:
    """`text` with each (old, new) replaced; an `old` the doc no longer has fails the test."""
    for old, new in pairs:
        assert old in text, f"the doc no longer says {old!r}"
        text = text.replace(old, new)
    return text


@needs_promtool
def test_the_documented_files_are_valid(tmp_path: Path) -> None:
    files = doc_files()
    amtool = Path(require_alertmanager()).with_name("amtool")
    if amtool.exists():
        (tmp_path / "alertmanager.yml").write_text(files["alertmanager.yml"])
        check = subprocess.run([str(amtool), "check-config", str(tmp_path / "alertmanager.yml")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0 and "3 inhibit rules" in check.stdout, check.stdout + check.stderr
    (tmp_path / "rules.yml").write_text(RULES.read_text())
    (tmp_path / "prometheus.yml").write_text(files["prometheus.yml"])
    assert PROMTOOL is not None
    promtool = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
                              capture_output=True, text=True, timeout=30)
    assert promtool.returncode == 0 and "28 rules found" in promtool.stdout, promtool.stdout + promtool.stderr


def disruption_alerts(bodies: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(status, journey, region) of every JourneyDisruption in every notification received."""
    return [(a["status"], a["labels"]["journey"], a["labels"]["region"])
            for body in bodies for a in body["alerts"] if a["labels"]["alertname"] == "JourneyDisruption"]


def alerts_of(prom: PrometheusServer, name: str, state: str | None = None) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["labels"]["alertname"] == name and state in (None, a["state"])]


@pytest.fixture
def receiver() -> Iterator[tuple[asyncio.AbstractEventLoop, Receiver]]:
    """The recording webhook receiver, on a loop of its own in this thread (driven while the test waits)."""
    loop = asyncio.new_event_loop()
    hook = loop.run_until_complete(Receiver().start())
    try:
        yield loop, hook
    finally:
        loop.run_until_complete(hook.close())
        loop.close()


def pump(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    """Let the receiver answer for `seconds` (its loop runs only while we wait on it)."""
    loop.run_until_complete(asyncio.sleep(seconds))


def wait_pumping(loop: asyncio.AbstractEventLoop, check: Any, limit_s: float, what: str) -> Any:
    return wait_for(check, limit_s, what, every=0.5, pause=lambda s: pump(loop, s))


@needs_prometheus
def test_the_ten_minute_setup_pages_once_per_journey_and_region(
        tmp_path: Path, receiver: tuple[asyncio.AbstractEventLoop, Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    loop, hook = receiver
    files = doc_files()
    ports = {region: free_port() for region in REGIONS}
    am = AlertmanagerServer(tmp_path / "am")
    am.root.mkdir()
    (tmp_path / "alertmanager.yml").write_text(changed(files["alertmanager.yml"],
                                                       ("http://127.0.0.1:5001/alerts", hook.url)))
    am.config_file = tmp_path / "alertmanager.yml"
    (tmp_path / "rules.yml").write_text(RULES.read_text())
    (tmp_path / "prometheus.yml").write_text(changed(
        files["prometheus.yml"], ("127.0.0.1:9469", f"127.0.0.1:{ports['eu-west']}"),
        ("127.0.0.1:9470", f"127.0.0.1:{ports['ap-south']}"), ("127.0.0.1:9093", f"127.0.0.1:{am.port}")))
    prom = PrometheusServer(tmp_path / "prom", config_file=tmp_path / "prometheus.yml",
                            flags=["--enable-feature=exemplar-storage"])
    prom.root.mkdir()
    agents: list[AgentProcess] = []
    with DemoProcess() as demo:
        (tmp_path / "journeys.yaml").write_text(changed(
            files["journeys.yaml"], ("http://127.0.0.1:8080", demo.url), ("http://127.0.0.1:9093", am.url)))
        am.start()
        try:
            for region in REGIONS:  # REGION=... PORT=... qos-agent run journeys.yaml
                monkeypatch.setenv("REGION", region)
                monkeypatch.setenv("PORT", str(ports[region]))
                agents.append(AgentProcess(tmp_path / "journeys.yaml", cwd=tmp_path, start_timeout=60).__enter__())
            prom.start()
            wait_pumping(loop, lambda: len(prom.query('up{job="qos-agent"} == 1')) == 2, 60, "both agents scraped")
            wait_pumping(loop, lambda: len(prom.query('qos_journey_runs_total{journey="checkout"} > 0')) >= 2, 60,
                         "both regions' checkout runs")
            demo.add_faults([{"path": "/api/pay", "region": "ap-south", "status": 503}])

            # The sink's alert, notified once.
            wait_pumping(loop, lambda: disruption_alerts(hook.bodies), 90, "the receiver's first JourneyDisruption")
            # The rule raises the same alert; Alertmanager holds one (Prometheus' post is the newest once
            # its generatorURL shows: the sink sets none).
            [fired] = wait_pumping(loop, lambda: alerts_of(prom, "JourneyDisruption", "firing"), 180,
                                   "the rule's JourneyDisruption firing in Prometheus")
            assert (fired["labels"]["region"], fired["labels"]["agent"]) == ("ap-south", "agent-ap-south")

            def held() -> list[dict[str, Any]]:
                alerts = [a for a in am.alerts() if a["labels"]["alertname"] == "JourneyDisruption"]
                assert len(alerts) == 1, alerts  # never two: the sink's and the rule's are one alert
                return alerts if f":{prom.port}/" in alerts[0].get("generatorURL", "") else []

            [one] = wait_pumping(loop, held, 90, "Prometheus' copy merged into the sink's alert")
            assert one["labels"] == {
                "alertname": "JourneyDisruption", "journey": "checkout", "region": "ap-south",
                "agent": "agent-ap-south", "severity": "page", "hidden_from_uptime": "true", "team": "payments"}
            # The rule's regional alert fires too, and the doc's first inhibit rule mutes it.
            wait_pumping(loop, lambda: alerts_of(prom, "JourneyFailingInManyRegions", "firing"), 240,
                         "JourneyFailingInManyRegions firing in Prometheus")

            def muted() -> bool:
                found = [a for a in am.alerts() if a["labels"]["alertname"] == "JourneyFailingInManyRegions"]
                return bool(found) and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
                                           for a in found)

            wait_pumping(loop, muted, 60, "the regional alert inhibited in Alertmanager")
            pump(loop, 25)  # group_wait and then some: a second notification would have come by now
            assert disruption_alerts(hook.bodies) == [("firing", "checkout", "ap-south")], hook.bodies
            assert {a["labels"]["alertname"] for body in hook.bodies for a in body["alerts"]} == {"JourneyDisruption"}
            assert alerts_of(prom, "JourneyErrorBudgetBurn") == [], prom.alerts()  # neither pending nor firing
            assert all(a["labels"].get("region") != "eu-west" for a in prom.alerts())
            assert hook.problems == []
        finally:
            prom.stop()
            for agent in agents:
                agent.stop()
            am.stop()


def test_with_labels_that_differ_the_docs_inhibit_rule_keeps_one_page(
        tmp_path: Path, receiver: tuple[asyncio.AbstractEventLoop, Receiver]) -> None:
    """The sink marked `labels: {via: agent}` and a rule's copy that Prometheus' external_labels changed:
    two alerts in Alertmanager, one notification (the doc's third inhibit rule mutes the rule's copy)."""
    loop, hook = receiver
    am = AlertmanagerServer(tmp_path / "am")
    am.root.mkdir()
    am.config_file = tmp_path / "alertmanager.yml"
    am.config_file.write_text(changed(doc_files()["alertmanager.yml"], ("http://127.0.0.1:5001/alerts", hook.url)))
    same = {"alertname": "JourneyDisruption", "journey": "checkout", "region": "ap-south", "agent": "agent-ap-south",
            "severity": "page", "hidden_from_uptime": "true", "team": "payments"}
    sink = {"labels": {**same, "via": "agent"}, "annotations": {"summary": "from the agent"}}
    rule = {"labels": {**same, "cluster": "eu-1"}, "annotations": {"summary": "from the rule"},
            "generatorURL": "http://prometheus.example/graph"}
    am.start()
    try:
        request = urllib.request.Request(am.url + "/api/v2/alerts", data=json.dumps([sink, rule]).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with _NO_PROXY.open(request, timeout=5) as r:
            assert r.status == 200
        wait_pumping(loop, lambda: hook.bodies, 40, "a notification")
        pump(loop, 5)
        [body] = hook.bodies
        assert [a["labels"].get("via") for a in body["alerts"]] == ["agent"]
        states = {a["labels"].get("via", "rule"): a["status"]["state"] for a in am.alerts()}
        assert states == {"agent": "active", "rule": "suppressed"}
    finally:
        am.stop()
