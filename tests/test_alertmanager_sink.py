"""The alertmanager sink's records against a real Alertmanager: labels, firing, resolved, restarts, HA pair.

These drive the sink's own `encode` / `send` / `start` (what the core's delivery calls) with
disruption points made by the real evaluator; tests/test_alerting_e2e.py runs the whole agent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from exporters.alerts.alertmanager import AlertmanagerSink
from exporters.alerts.book import KEEP_TOLD_S
from exporters.alerts.config import AlertmanagerSpec
from exporters.alerts.event import DisruptionEvent, iso
from qos_agent.errors import PermanentError, RetryableError
from qos_agent.language.secrets import Redactor
from qos_agent.model import AlertSpec, ErrorClass, Journey, JourneyKind, JourneyResult, Location, Outcome, Point
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.quality.evaluator import Evaluator
from tests.support.alertmanager import AlertmanagerServer, Receiver

LOC = Location("journeys.yaml", 1, 1)
JOURNEY = Journey(name="checkout", steps=(), interval_s=1.0, location=LOC, tags=(("stage", "purchase"),), uptime="uptime",
                  alert=AlertSpec(severity="page", runbook="https://wiki.example/checkout"))
UPTIME = Journey(name="uptime", steps=(), interval_s=1.0, location=LOC, kind=JourneyKind.UPTIME)
SECRET = "s3cr3t-token-value"


class Outbox:
    """Stands in for the core's durable outbox: keeps what the sink puts, for the test to send."""

    def __init__(self) -> None:
        self.records: list[str] = []

    async def put(self, records: Sequence[str]) -> None:
        self.records.extend(records)

    def take(self) -> list[str]:
        out, self.records = self.records, []
        return out


def result(journey: Journey, t_ms: int, ok: bool) -> JourneyResult:
    return JourneyResult(journey=journey.name, kind=journey.kind, region="ap-south", agent="agent-ap", run_id=f"r{t_ms}",
                         start_ms=t_ms, outcome=Outcome.PASSED if ok else Outcome.FAILED, duration_ms=12.0, steps=[],
                         failed_step="" if ok else "pay", error=None if ok else ErrorClass.STATUS,
                         error_message="" if ok else f"HTTP 503 (token {SECRET})")


def disruption(state: str, t0_ms: int | None = None) -> Point:
    """The evaluator's own open (or open then close) point for checkout in ap-south, uptime green."""
    t0 = t0_ms if t0_ms is not None else int(time.time() * 1000) - 10_000
    ev = Evaluator([JOURNEY, UPTIME], "agent-ap")
    points: list[Point] = []
    for i in range(2):
        ev.observe([result(UPTIME, t0 + i * 1000, True)])
        points += ev.observe([result(JOURNEY, t0 + i * 1000 + 1, False)])
    if state == "close":
        for i in range(3):
            points += ev.observe([result(JOURNEY, t0 + 5000 + i * 1000, True)])
    return points[-1]


def make_sink(state_dir: Path, url: str, **kw: Any) -> AlertmanagerSink:
    spec = AlertmanagerSpec(url=url, name="am-test", resend_s=10.0, labels=(("team", "payments"),), **kw)
    return AlertmanagerSink(spec, ExporterEnv(state_dir, "ap-south", "agent-ap", Redactor([SECRET])))


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


@pytest.fixture
def am(tmp_path: Path, receiver: Receiver) -> Any:
    server = AlertmanagerServer(tmp_path / "am", hook_url=receiver.url)
    server.start()
    yield server
    server.stop()


def starts_at_ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def ours(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"].get("alertname") == "JourneyDisruption"]


async def test_open_fires_with_labels_and_close_resolves(tmp_path: Path, am: AlertmanagerServer,
                                                         receiver: Receiver) -> None:
    sink = make_sink(tmp_path, am.url)
    try:
        opened = disruption("open")
        await sink.send(sink.encode([opened, Point("journey", (), (("duration_ms", 1.0),), 0)]))
        active = ours(await am.wait_for(lambda a: len(ours(a)) == 1, 5))
        assert len(active) == 1
        alert = active[0]
        assert alert["labels"] == {"alertname": "JourneyDisruption", "journey": "checkout", "region": "ap-south",
                                   "agent": "agent-ap", "severity": "page", "hidden_from_uptime": "true",
                                   "stage": "purchase", "team": "payments"}
        notes = alert["annotations"]
        assert notes["summary"].startswith("checkout broken in ap-south at step pay")
        assert notes["failed_step"] == "pay" and notes["error"] == "status"
        assert notes["runbook_url"] == "https://wiki.example/checkout"
        assert "***" in notes["error_message"] and SECRET not in json.dumps(alert)
        assert alert["status"]["state"] == "active"
        assert alert["startsAt"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(opened.time_ms / 1000)))
        # endsAt four resends ahead, stamped at the send (docs/alerting.md): a dead agent's alert ends by itself
        ends_in = (starts_at_ms(alert["endsAt"]) - time.time() * 1000) / 1000
        assert 4 * 10.0 - 10 < ends_in <= 4 * 10.0, ends_in
        # Alertmanager's own notification, through the route of its config.
        assert await receiver.wait_for(lambda b: any(x["status"] == "firing" for x in b), 10)

        await sink.send(sink.encode([disruption("close", int(str(opened.field("opened_ms"))) - 1)]))
        # close point of another run of the evaluator has another opened_ms: resolve by labels anyway
        assert ours(await am.wait_for(lambda a: not ours(a), 5)) == []
        assert await receiver.wait_for(lambda b: any(x["status"] == "resolved" for x in b), 10)
        fired = next(x for x in receiver.bodies if x["status"] == "firing")
        assert fired["alerts"][0]["labels"]["journey"] == "checkout"
    finally:
        await sink.close()


async def test_a_late_firing_record_never_reopens_a_resolved_alert(tmp_path: Path, am: AlertmanagerServer) -> None:
    sink = make_sink(tmp_path, am.url)
    try:
        opened = disruption("open")
        firing = sink.encode([opened])
        resolved = sink.encode([disruption("close", int(str(opened.field("opened_ms"))))])
        await sink.send(firing)  # was waiting in the store (Alertmanager away) while the disruption closed
        await sink.send(resolved)
        await sink.send(firing)  # a re-send delivered after the resolve: left out
        assert ours(await am.wait_for(lambda a: bool(ours(a)), 2)) == []
    finally:
        await sink.close()


async def test_restart_resends_what_it_held_then_resolves_what_it_no_longer_holds(
        tmp_path: Path, am: AlertmanagerServer) -> None:
    first = make_sink(tmp_path, am.url)
    await first.send(first.encode([disruption("open")]))
    await first.close()  # killed: no close ever came; the state file says it is open
    assert ours(await am.wait_for(lambda a: len(ours(a)) == 1, 5))
    state = json.loads((tmp_path / "alerts" / "am-test.json").read_text())
    assert [(a["event_key"], a["status"]) for a in state["alerts"]] == [("agent-ap/checkout/ap-south", "firing")]

    second = make_sink(tmp_path, am.url)
    outbox = Outbox()
    try:
        await second.start(outbox)
        await asyncio.sleep(0.2)  # the resend timer's first tick, right at start
        resent = outbox.take()
        assert [json.loads(r)["k"] for r in resent] == ["firing"]  # re-sent while the restarted agent decides
        await second.send(resent)
        await second.tick(now_s=time.time() + 29)  # not yet: the evaluator may still open it again
        assert [json.loads(r)["k"] for r in outbox.take()] == ["firing"]
        await second.tick(now_s=time.time() + 31)  # three resends later it has not opened it again: let go
        records = outbox.take()
        assert [json.loads(r)["k"] for r in records] == ["resolved"]
        await second.send(records)
        assert ours(await am.wait_for(lambda a: not ours(a), 5)) == []
        (kept,) = json.loads((tmp_path / "alerts" / "am-test.json").read_text())["alerts"]
        assert (kept["status"], kept["told"]) == ("resolved", True)  # told: kept a while, a repeated close is known
        await second.tick(now_s=time.time() + KEEP_TOLD_S + 60)
        assert json.loads((tmp_path / "alerts" / "am-test.json").read_text())["alerts"] == []  # then gone
    finally:
        await second.close()


async def test_a_restarted_agent_that_opens_it_again_keeps_the_same_alert(tmp_path: Path,
                                                                          am: AlertmanagerServer) -> None:
    first = make_sink(tmp_path, am.url)
    before = disruption("open", int(time.time() * 1000) - 60_000)
    await first.send(first.encode([before]))
    await first.close()
    second = make_sink(tmp_path, am.url)
    outbox = Outbox()
    try:
        await second.start(outbox)
        await asyncio.sleep(0.2)
        assert [json.loads(r)["k"] for r in outbox.take()] == ["firing"]  # the timer's first re-send
        await second.send(second.encode([disruption("open")]))  # still broken after the restart
        await second.tick(now_s=time.time() + 31)
        assert [json.loads(r)["k"] for r in outbox.take()] == ["firing"]  # no resolve: adopted
        active = ours(await am.wait_for(lambda a: len(ours(a)) == 1, 5))
        assert len(active) == 1
        assert active[0]["startsAt"] == iso(int(str(before.field("opened_ms"))))
    finally:
        await second.close()


async def test_ha_pair_both_instances_get_every_alert(tmp_path: Path, receiver: Receiver) -> None:
    one = AlertmanagerServer(tmp_path / "am1", hook_url=receiver.url)
    two = AlertmanagerServer(tmp_path / "am2", hook_url=receiver.url)
    one.start()
    try:
        # from the config: one sink (one durable queue) per instance
        from tests.test_alerting_config import parse_exporters

        specs = parse_exporters(f"""
  - type: alertmanager
    urls: [{one.url}, {two.url}]
    resend: 10s""")
        assert [s.url for s in specs] == [one.url, two.url] and len({s.name for s in specs}) == 2
        sinks = [AlertmanagerSink(s, ExporterEnv(tmp_path, "ap-south", "agent-ap")) for s in specs]
        point = disruption("open")
        records = [s.encode([point]) for s in sinks]
        await sinks[0].send(records[0])
        with pytest.raises(RetryableError):  # the second instance is down: its queue keeps the record
            await sinks[1].send(records[1])
        assert len(ours(await one.wait_for(lambda a: len(ours(a)) == 1, 5))) == 1
        two.start()
        await sinks[1].send(records[1])  # the core's retry, once it is back
        for server in (one, two):
            assert len(ours(await server.wait_for(lambda a: len(ours(a)) == 1, 5))) == 1
        for s in sinks:
            await s.close()
    finally:
        one.stop()
        two.stop()


async def test_refused_alerts_are_permanent_and_auth_problems_wait(tmp_path: Path, am: AlertmanagerServer) -> None:
    sink = make_sink(tmp_path, am.url)
    try:
        rec = json.loads(sink.encode([disruption("open")])[0])
        rec["body"]["labels"]["bad label"] = "x"  # Alertmanager answers 400: it never will accept it
        with pytest.raises(PermanentError, match="HTTP 400"):
            await sink.send([json.dumps(rec)])
        with pytest.raises(PermanentError, match="not an alert record"):
            await sink.send(["{not json"])
    finally:
        await sink.close()
    wrong = make_sink(tmp_path, am.url + "/nowhere")
    try:
        with pytest.raises(RetryableError) as info:
            await wrong.send(wrong.encode([disruption("open")]))
        assert "HTTP 404" in str(info.value) and info.value.fix
    finally:
        await wrong.close()



async def test_an_unreadable_state_file_starts_empty_and_is_rewritten_whole(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "alerts" / "am-test.json"
    path.parent.mkdir()
    path.write_text('{"version": 1, "alerts": {"x": {"labels": ')  # torn by hand (the sink never writes in place)
    sink = make_sink(tmp_path, "http://127.0.0.1:1")
    outbox = Outbox()
    try:
        await sink.start(outbox)
        await asyncio.sleep(0.2)
        assert outbox.take() == [] and "unreadable" in caplog.text
        sink.encode([disruption("open")])
        assert [a["event_key"] for a in json.loads(path.read_text())["alerts"]] == ["agent-ap/checkout/ap-south"]
        assert [p.name for p in path.parent.iterdir()] == ["am-test.json"]  # no temp file left behind
    finally:
        await sink.close()


async def test_a_book_an_earlier_version_wrote_is_read_as_firing_alerts(tmp_path: Path) -> None:
    """docs/alerting.md: a `version: 1` book (firing alerts by agent/journey/region) is read as firing
    alerts: re-sent at start with their labels and startsAt, kept when the new process opens them again."""
    path = tmp_path / "alerts" / "am-test.json"
    path.parent.mkdir()
    opened = disruption("open")
    labels = make_sink(tmp_path, "http://127.0.0.1:1").labels(DisruptionEvent.of(opened))  # type: ignore[arg-type]
    starts = iso(int(str(opened.field("opened_ms"))))
    path.write_text(json.dumps({"version": 1, "alerts": {"agent-ap/checkout/ap-south": {"labels": labels, "starts_at": starts,
                                                                     "annotations": {"reason": "2 failed runs"}}}}))
    sink = make_sink(tmp_path, "http://127.0.0.1:1")
    outbox = Outbox()
    try:
        await sink.start(outbox)
        await asyncio.sleep(0.2)  # the timer's first tick
        (resent,) = [json.loads(r) for r in outbox.take()]
        assert (resent["k"], resent["body"]["labels"], resent["body"]["startsAt"]) == ("firing", labels, starts)
        (again,) = [json.loads(r) for r in sink.encode([opened])]  # the new process opens it again: the same alert
        assert (again["id"], again["starts"]) == ("agent-ap/checkout/ap-south", starts)
    finally:
        await sink.close()
