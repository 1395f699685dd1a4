"""Every firing an alert sink told is told resolved, with the same key, across restarts and spool bounds.

The webhook (every format, against a recording receiver) and Alertmanager (the real one) keep their
alerts in state_dir (exporters/alerts/book.py) and tell the receiver the current state: a close point
(`close_reason` healed or removed) resolves the alert it closes, after a restart too; an alert the
restarted agent never opens again is resolved after the grace; the webhook's key (PagerDuty's
`dedup_key`, the json `key`) stays what it was at the opening; a resolve the spool bound dropped is
put out again until the receiver accepted it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from exporters.alerts.config import WebhookSpec
from exporters.alerts.webhook import GRACE_S, REPUT_S, WebhookSink
from qos_agent.delivery.durable import DurableSink
from qos_agent.language.secrets import Redactor
from qos_agent.model import Point
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv
from tests.support.alertmanager import AlertmanagerServer, Receiver
from tests.test_alertmanager_sink import SECRET, Outbox, disruption, make_sink, ours

FORMATS = ("json", "slack", "pagerduty")


def key_of(body: dict[str, Any]) -> str:
    """The key a receiver pairs a firing and its resolve by (Slack has none: its text)."""
    return str(body.get("key") or body.get("dedup_key") or "")


def resolved(body: dict[str, Any]) -> bool:
    return body.get("status") == "resolved" or body.get("event_action") == "resolve" or \
        str(body.get("text", "")).startswith(":large_green_circle: RESOLVED")


def with_reason(point: Point, reason: str) -> Point:
    """A close point as a reload that took the journey away makes it (`close_reason`)."""
    return Point(point.measurement, point.tags, (*point.fields, ("close_reason", reason)), point.time_ms)


def hook(state: Path, url: str, fmt: str) -> WebhookSink:
    spec = WebhookSpec(url=url, name=f"hook-{fmt}", format=fmt, routing_key="R0UT1NGKEY" if fmt == "pagerduty" else "")
    return WebhookSink(spec, ExporterEnv(state, "ap-south", "agent-ap", Redactor([SECRET])))


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


async def restarted(state: Path, url: str, fmt: str) -> tuple[WebhookSink, Outbox]:
    """A webhook sink of a restarted agent, started (its first tick puts what the book holds)."""
    sink, outbox = hook(state, url, fmt), Outbox()
    await sink.start(outbox)
    await asyncio.sleep(0.1)
    return sink, outbox


@pytest.mark.parametrize("fmt", FORMATS)
async def test_an_alert_the_restarted_agent_never_opens_again_is_resolved_with_its_key(
        fmt: str, tmp_path: Path, receiver: Receiver) -> None:
    first = hook(tmp_path, receiver.url, fmt)
    await first.send(first.encode([disruption("open")]))
    await first.close()  # killed: the journey is gone from the new configuration, no close point comes
    second, outbox = await restarted(tmp_path, receiver.url, fmt)
    try:
        assert outbox.take() == []  # the firing was told already: nothing to repeat
        await second.tick(now_s=time.time() + GRACE_S - 5)
        assert outbox.take() == []  # the new process may still open it again
        await second.tick(now_s=time.time() + GRACE_S + 1)
        await second.send(outbox.take())
    finally:
        await second.close()
    fired, ended = receiver.bodies
    assert not resolved(fired) and resolved(ended) and key_of(fired) == key_of(ended)
    if fmt == "json":
        assert ended["close_reason"] == "restart" and ended["key"].startswith("qos-agent/agent-ap/checkout/ap-south/")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_the_key_is_the_openings_across_a_restart_whatever_the_new_process_says(
        fmt: str, tmp_path: Path, receiver: Receiver) -> None:
    """The restarted agent opens it again (a later opened_ms: its evaluator started afresh), then it heals:
    its resolve carries the key the receiver got with the firing before the restart."""
    first = hook(tmp_path, receiver.url, fmt)
    await first.send(first.encode([disruption("open", int(time.time() * 1000) - 120_000)]))
    await first.close()
    second, outbox = await restarted(tmp_path, receiver.url, fmt)
    try:
        await second.send(second.encode([disruption("open")]))  # still broken: adopted, nothing new told
        await second.send(second.encode([disruption("close")]))
        assert outbox.take() == []
    finally:
        await second.close()
    assert [resolved(b) for b in receiver.bodies] == [False, True]
    assert key_of(receiver.bodies[0]) == key_of(receiver.bodies[1])


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_close_repeated_after_a_kill_9_is_not_posted_again(fmt: str, tmp_path: Path,
                                                                   receiver: Receiver) -> None:
    """After a `kill -9` the evaluator announces the closes of its last ten minutes again (one may have
    been lost between its file and a sink's spool). A resolve the receiver accepted before is not posted
    a second time: Slack has no key to drop it by. Caught by the real-process lifecycle test (seed 11:
    one more `resolved` per format for each kill -9 within ten minutes of a close)."""
    first = hook(tmp_path, receiver.url, fmt)
    opened = disruption("open")
    close = disruption("close", int(str(opened.field("opened_ms"))) - 1001)
    await first.send(first.encode([opened]))
    await first.send(first.encode([close]))
    await first.close()  # then killed: the book is what the file says
    second, outbox = await restarted(tmp_path, receiver.url, fmt)
    try:
        await second.send(second.encode([close]))  # the evaluator's repeat at start
        await second.send(outbox.take())
        await second.tick(now_s=time.time() + REPUT_S + 1)
        await second.send(outbox.take())
    finally:
        await second.close()
    assert [resolved(b) for b in receiver.bodies] == [False, True]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_repeated_close_of_an_earlier_disruption_leaves_the_open_one_firing(fmt: str, tmp_path: Path,
                                                                                    receiver: Receiver) -> None:
    """Caught by the real-process lifecycle test (`make soak`, seed 15): checkout's disruption closed, a
    new one opened, then kill -9; the restarted agent repeats the first one's close (the closes of the
    last ten minutes) and announces the second one, still open. The book matched the close to "the
    firing alert of checkout" — the second one — and resolved it: the receiver was told resolved while
    customers were still hurt, and the second one's open then made a new alert with another key (`…+`)."""
    now = int(time.time() * 1000)
    first_open, first_close = disruption("open", now - 300_000), disruption("close", now - 300_000)
    second_open = disruption("open", now - 10_000)
    first = hook(tmp_path, receiver.url, fmt)
    for p in (first_open, first_close, second_open):
        await first.send(first.encode([p]))
    await first.close()  # then killed
    second, outbox = await restarted(tmp_path, receiver.url, fmt)
    try:
        await second.send(second.encode([first_close, second_open]))  # what the evaluator announces at start
        await second.send(outbox.take())
    finally:
        await second.close()
    assert [resolved(b) for b in receiver.bodies] == [False, True, False]  # the second one still firing, once
    if fmt != "slack":
        assert key_of(receiver.bodies[2]).endswith(f"/{second_open.field('opened_ms')}")
        assert json.loads((tmp_path / "alerts" / f"hook-{fmt}.json").read_text())["alerts"][-1]["status"] == "firing"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_journey_removed_by_a_reload_resolves_with_its_reason(fmt: str, tmp_path: Path,
                                                                      receiver: Receiver) -> None:
    sink = hook(tmp_path, receiver.url, fmt)
    try:
        opened = disruption("open")
        await sink.send(sink.encode([opened]))
        close = with_reason(disruption("close", int(str(opened.field("opened_ms"))) - 1001), "removed")
        await sink.send(sink.encode([close]))
    finally:
        await sink.close()
    fired, ended = receiver.bodies
    assert resolved(ended) and key_of(fired) == key_of(ended)
    text = json.dumps(ended)
    assert "no longer measured in ap-south" in text
    if fmt != "slack":
        assert '"close_reason": "removed"' in text


async def test_a_resolve_the_spool_bound_dropped_is_told_all_the_same(tmp_path: Path, receiver: Receiver) -> None:
    """The receiver is away while checkout opens and closes and other journeys' events fill the spool
    past its bound (the oldest records, checkout's, are dropped); once it is back the book puts
    checkout's resolve out again."""
    sink = hook(tmp_path, receiver.url, "json")
    durable = DurableSink(sink, tmp_path, options=DeliveryOptions(batch_size=1, flush_interval_s=0.0,
                                                                  max_spool_mb=0.03, parallel=1,
                                                                  backoff_base_s=0.02, backoff_cap_s=0.05))
    receiver.answers = [503] * 100_000
    try:
        await durable.start()
        opened = disruption("open")
        await durable.write([opened])
        await durable.write([disruption("close", int(str(opened.field("opened_ms"))) - 1001)])
        for i in range(60):  # other journeys' disruptions, ~1 KB a record: past the 30 KB bound
            other = disruption("open")
            tags = tuple((k, f"search-{i}" if k == "journey" else v) for k, v in other.tags)
            await durable.write([Point(other.measurement, tags, other.fields, other.time_ms)])
        assert durable.stats().dropped_by_cause.get("spool_full", 0) > 0
        assert not any('"journey": "checkout"' in r and '"k": "resolved"' in r for r in spooled(durable))  # dropped
        receiver.answers = []
        await sink.tick(now_s=time.time() + REPUT_S + 1)  # what the book has not told yet goes out again
        assert await receiver.wait_for(lambda b: any(x["journey"] == "checkout" and x["status"] == "resolved"
                                                     for x in b), 20)
    finally:
        await durable.close()
    checkout = [b["status"] for b in receiver.bodies if b["journey"] == "checkout"]
    assert checkout[-1] == "resolved" and checkout.count("resolved") == 1  # dropped from the spool, told all the same


def spooled(durable: DurableSink) -> list[str]:
    """The records the spool file holds now (read beside the delivery loop: WAL readers do not block)."""
    with sqlite3.connect(durable.store.path) as db:
        rows = [r[0] for r in db.execute("SELECT line FROM spool")]
    db.close()
    return rows


@pytest.fixture
def am(tmp_path: Path, receiver: Receiver) -> Any:
    server = AlertmanagerServer(tmp_path / "am", hook_url=receiver.url)
    server.start()
    yield server
    server.stop()


async def test_alertmanager_resolves_an_alert_the_restarted_agent_closes(tmp_path: Path,
                                                                        am: AlertmanagerServer) -> None:
    first = make_sink(tmp_path, am.url)
    opened = disruption("open", int(time.time() * 1000) - 60_000)
    await first.send(first.encode([opened]))
    await first.close()  # kill -9: no close came
    assert len(ours(await am.wait_for(lambda a: len(ours(a)) == 1, 5))) == 1
    second = make_sink(tmp_path, am.url)
    outbox = Outbox()
    try:
        await second.start(outbox)
        await asyncio.sleep(0.1)
        await second.send(outbox.take())  # the held alert, re-sent at start
        # the new process's evaluator (durable) knew it was open and saw it healed: a close point at once
        close = with_reason(disruption("close", int(str(opened.field("opened_ms"))) - 1001), "healed")
        await second.send(second.encode([close]))
        assert ours(await am.wait_for(lambda a: not ours(a), 5)) == []
    finally:
        await second.close()


async def test_alertmanager_is_told_a_removed_journeys_resolve_until_it_accepts(
        tmp_path: Path, am: AlertmanagerServer, receiver: Receiver) -> None:
    sink = make_sink(tmp_path, am.url)
    outbox = Outbox()
    try:
        await sink.start(outbox)
        opened = disruption("open")
        await sink.send(sink.encode([opened]))
        assert len(ours(await am.wait_for(lambda a: len(ours(a)) == 1, 5))) == 1
        outbox.take()  # the timer's first tick, at start
        close = with_reason(disruption("close", int(str(opened.field("opened_ms"))) - 1001), "removed")
        sink.encode([close])  # its record is lost (dropped by a full spool, say) before it is sent
        await sink.tick(now_s=time.time() + 11)  # the next resend puts the current state out: the resolve
        records = outbox.take()
        assert [json.loads(r)["k"] for r in records] == ["resolved"]
        await sink.send(records)
        assert ours(await am.wait_for(lambda a: not ours(a), 5)) == []
        assert await receiver.wait_for(lambda b: any(x["status"] == "resolved" for x in b), 10)
        gone = next(x for b in receiver.bodies if b["status"] == "resolved" for x in b["alerts"])
        assert gone["annotations"]["close_reason"] == "removed"
        await sink.tick(now_s=time.time() + 22)
        assert outbox.take() == []  # told: nothing left to repeat
    finally:
        await sink.close()

