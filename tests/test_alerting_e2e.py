"""The whole agent (a real process) against the demo service and real Alertmanagers: the disruption reaches people.

Times: interval 1s, resend 10s (the floor). A fault in checkout -> the alert is active within two
intervals plus one resend; healed -> resolved within the close rule plus one resend; Alertmanager's
own route notifies a loopback receiver (firing, then resolved). Also: Alertmanager away when the
disruption opens, an HA pair, kill -9 with the fault healed before the restart, and the PagerDuty
webhook through a receiver that fails once.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.alertmanager import AlertmanagerServer, Receiver, require_alertmanager
from tests.support.cli import qos, start
from tests.support.demo import CHECKOUT_STEPS, UPTIME_STEPS, DemoProcess
from tests.support.influx import free_port
from tests.test_webhook_sink import check_pagerduty

INTERVAL_S, RESEND_S = 1.0, 10.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
AGENT = """\
version: 1
agent: {{state_dir: state, interval: 1s, name: agent-ap, listen: "127.0.0.1:{port}"}}
variables: {{base: "{url}"}}
exporters:
{exporters}
journeys:
  - name: checkout
    tags: {{stage: purchase}}
    alert: {{severity: page, runbook: "https://wiki.example/checkout"}}
""" + CHECKOUT_STEPS + """  - name: uptime
    kind: uptime
""" + UPTIME_STEPS
LABELS = {"alertname": "JourneyDisruption", "journey": "checkout", "region": "ap-south", "agent": "agent-ap",
          "severity": "page", "hidden_from_uptime": "true", "stage": "purchase", "team": "payments"}


def ours(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"].get("alertname") == "JourneyDisruption"]


def am_sink(*urls: str) -> str:
    return f"  - {{type: alertmanager, urls: [{', '.join(urls)}], resend: 10s, labels: {{team: payments}}}}"


class AgentRun:
    """`qos-agent run` in its own home, started and stopped (or killed) by the test."""

    def __init__(self, home: Path, url: str, exporters: str) -> None:
        self.home = home
        self.port = free_port()
        home.mkdir(exist_ok=True)
        (home / "journeys.yaml").write_text(AGENT.format(url=url, exporters=exporters, port=self.port))
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> AgentRun:
        """Start, and return once it serves /healthz (a loaded machine may take seconds to get there)."""
        self.proc = start("run", str(self.home / "journeys.yaml"), "--region", "ap-south", "--duration", "120s",
                          cwd=self.home)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                _NO_PROXY.open(f"http://127.0.0.1:{self.port}/healthz", timeout=1).close()
                return self
            except urllib.error.HTTPError:  # any answer means it is running
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the agent did not come up: {self.stop()}")

    def stop(self, kill: bool = False) -> str:
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=10)
        return err


@pytest.fixture
def demo() -> Iterator[DemoProcess]:
    with DemoProcess() as service:
        yield service


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


@pytest.fixture
def am(tmp_path: Path, receiver: Receiver) -> Iterator[AlertmanagerServer]:
    require_alertmanager()
    server = AlertmanagerServer(tmp_path / "am", hook_url=receiver.url)
    server.start()
    yield server
    server.stop()


async def test_fault_fires_the_alert_and_healing_resolves_it(tmp_path: Path, demo: DemoProcess,
                                                             am: AlertmanagerServer, receiver: Receiver) -> None:
    second = AlertmanagerServer(tmp_path / "am2")  # an HA pair: both get every alert
    second.start()
    agent = AgentRun(tmp_path / "agent", demo.url, am_sink(am.url, second.url)).start()
    try:
        await asyncio.sleep(2.5)
        assert ours(am.alerts()) == []
        demo.add_faults(["path=/api/pay,status=503"])  # checkout breaks; /health stays 200
        broke = time.monotonic()
        active = ours(await am.wait_for(lambda a: len(ours(a)) == 1, 2 * INTERVAL_S + RESEND_S))
        fired_after = time.monotonic() - broke
        assert len(active) == 1, (am.alerts(), agent.stop())
        assert active[0]["labels"] == LABELS
        notes = active[0]["annotations"]
        assert notes["failed_step"] == "pay" and notes["error"] == "status" and "503" in notes["error_message"]
        assert notes["runbook_url"] == "https://wiki.example/checkout" and notes["summary"].startswith("checkout broken")
        assert len(ours(await second.wait_for(lambda a: len(ours(a)) == 1, 5))) == 1
        # Alertmanager's own notification through its route reaches the receiver.
        assert await receiver.wait_for(lambda b: any(x["status"] == "firing" for x in b), 10)

        demo.clear_faults()
        healed = time.monotonic()
        left = ours(await am.wait_for(lambda a: not ours(a), 3 * INTERVAL_S + RESEND_S))
        resolved_after = time.monotonic() - healed
        assert left == [], left
        assert ours(await second.wait_for(lambda a: not ours(a), 5)) == []
        assert await receiver.wait_for(lambda b: any(x["status"] == "resolved" for x in b), 10)
        statuses = [x["status"] for x in receiver.bodies]
        assert statuses.index("firing") < statuses.index("resolved")
        print(f"\nalert active {fired_after:.1f}s after the fault; resolved {resolved_after:.1f}s after healing")
    finally:
        agent.stop()
        second.stop()


async def test_alertmanager_away_when_it_opens(tmp_path: Path, demo: DemoProcess, receiver: Receiver) -> None:
    require_alertmanager()
    am = AlertmanagerServer(tmp_path / "am", hook_url=receiver.url)  # its port is chosen, nothing listens yet
    agent = AgentRun(tmp_path / "agent", demo.url, am_sink(am.url)).start()
    try:
        await asyncio.sleep(2.0)
        demo.add_faults(["path=/api/pay,status=503"])
        await asyncio.sleep(6.0)  # the disruption opened; its alert waits in the durable store
        am.start()
        active = ours(await am.wait_for(lambda a: len(ours(a)) == 1, 45))
        assert [a["labels"] for a in active] == [LABELS], agent.stop()
        demo.clear_faults()
        assert ours(await am.wait_for(lambda a: not ours(a), 3 * INTERVAL_S + RESEND_S)) == []
        assert await receiver.wait_for(lambda b: any(x["status"] == "resolved" for x in b), 10)
    finally:
        agent.stop()
        am.stop()


async def test_kill9_while_open_then_restart_after_healing_leaves_nothing_firing(
        tmp_path: Path, demo: DemoProcess, am: AlertmanagerServer) -> None:
    agent = AgentRun(tmp_path / "agent", demo.url, am_sink(am.url)).start()
    try:
        await asyncio.sleep(2.0)
        demo.add_faults(["path=/api/pay,status=503"])
        assert len(ours(await am.wait_for(lambda a: len(ours(a)) == 1, 2 * INTERVAL_S + RESEND_S))) == 1
        agent.stop(kill=True)  # no close will ever come from this process
        demo.clear_faults()
        agent.start()  # healed: the restarted agent never opens it again
        # resolved once the restarted agent has not opened it again for three resends
        assert ours(await am.wait_for(lambda a: not ours(a), 3 * RESEND_S + 10)) == []
    finally:
        agent.stop()


async def test_pagerduty_webhook_trigger_then_resolve_after_a_500(tmp_path: Path, demo: DemoProcess) -> None:
    receiver = await Receiver(check_pagerduty).start()
    receiver.answers = [500]  # the first attempt fails: the core retries
    sink = f"  - {{type: webhook, url: \"{receiver.url}\", format: pagerduty, routing_key: R0UT1NG}}"
    agent = AgentRun(tmp_path / "agent", demo.url, sink).start()
    try:
        await asyncio.sleep(2.0)
        demo.add_faults(["path=/api/pay,status=503"])
        assert await receiver.wait_for(lambda b: len(b) >= 1, 20), (receiver.statuses, agent.stop())
        demo.clear_faults()
        assert await receiver.wait_for(lambda b: len(b) >= 2, 20), (receiver.statuses, agent.stop())
        assert receiver.statuses[0] == 500 and receiver.problems == []
        trigger, resolve = receiver.bodies[:2]
        assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
        assert trigger["dedup_key"] == resolve["dedup_key"]
        assert trigger["payload"]["source"] == "agent-ap" and trigger["payload"]["severity"] == "critical"
    finally:
        agent.stop()
        await receiver.close()


def test_the_demo_ends_with_an_alert_in_a_real_alertmanager(tmp_path: Path) -> None:
    require_alertmanager()
    r = qos("demo", "--state-dir", str(tmp_path / "demo"), "--interval", "500ms", "--fault-at", "2s",
            "--heal-at", "5s", "--alertmanager", "local", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    fired = next(i for i, line in enumerate(lines) if "ALERT FIRING in Alertmanager" in line)
    resolved = next(i for i, line in enumerate(lines) if "ALERT RESOLVED in Alertmanager" in line)
    opened = next(i for i, line in enumerate(lines) if "DISRUPTION OPEN" in line)
    assert opened < fired < resolved
    text = " ".join(lines[fired:fired + 2])
    for label in ('alertname="JourneyDisruption"', 'journey="checkout"', 'region="ap-south"', 'severity="page"',
                  'hidden_from_uptime="true"'):
        assert label in text, text
