"""The webhook sink's three formats against a loopback receiver that checks each format's required fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporters.alerts.config import WebhookSpec
from exporters.alerts.webhook import WebhookSink
from qos_agent.errors import PermanentError, RetryableError
from qos_agent.language.secrets import Redactor
from qos_agent.plugins.sinks import ExporterEnv
from tests.support.alertmanager import Receiver
from tests.test_alertmanager_sink import SECRET, disruption


def need(body: dict[str, Any], *paths: str) -> None:
    for path in paths:
        value: Any = body
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"missing {path}")
            value = value[part]
        if value in ("", None):
            raise ValueError(f"empty {path}")


def check_slack(body: dict[str, Any]) -> None:
    need(body, "text")
    assert all(b["type"] in ("section", "context") for b in body["blocks"])


def check_pagerduty(body: dict[str, Any]) -> None:
    need(body, "routing_key", "event_action", "dedup_key", "payload.summary", "payload.source", "payload.severity")
    assert body["event_action"] in ("trigger", "resolve")
    assert body["payload"]["severity"] in ("critical", "error", "warning", "info")


def check_json(body: dict[str, Any]) -> None:
    need(body, "event", "status", "journey", "region", "agent", "summary", "fields.reason", "fields.opened_ms")


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"json": check_json, "slack": check_slack,
                                                       "pagerduty": check_pagerduty}


def sink(tmp_path: Path, url: str, fmt: str) -> WebhookSink:
    spec = WebhookSpec(url=url, name=f"hook-{fmt}", format=fmt, headers=(("X-Team", "payments"),),
                       routing_key="R0UT1NGKEY" if fmt == "pagerduty" else "")
    return WebhookSink(spec, ExporterEnv(tmp_path, "ap-south", "agent-ap", Redactor([SECRET])))


@pytest.mark.parametrize("fmt", ["json", "slack", "pagerduty"])
async def test_each_format_open_then_close_with_a_retry(tmp_path: Path, fmt: str) -> None:
    receiver = await Receiver(CHECKS[fmt]).start()
    hook = sink(tmp_path, receiver.url, fmt)
    try:
        opened = disruption("open")
        closed = disruption("close", int(str(opened.field("opened_ms"))) - 1001)
        assert closed.field("opened_ms") == opened.field("opened_ms")  # the same disruption
        records = hook.encode([opened, closed])
        assert len(records) == 2 and SECRET not in "".join(records)
        receiver.answers = [500]
        with pytest.raises(RetryableError, match="HTTP 500"):  # the core keeps it and retries
            await hook.send(records[:1])
        await hook.send(records[:1])
        await hook.send(records[1:])
        assert receiver.statuses == [500, 200, 200] and receiver.problems == []
        first, second = receiver.bodies
        if fmt == "pagerduty":
            assert (first["event_action"], second["event_action"]) == ("trigger", "resolve")
            assert first["dedup_key"] == second["dedup_key"] and first["routing_key"] == "R0UT1NGKEY"
            assert first["payload"]["severity"] == "critical"  # the journey's severity: page
            assert first["links"] == [{"href": "https://wiki.example/checkout", "text": "Runbook"}]
        elif fmt == "slack":
            assert "checkout broken in ap-south" in first["text"] and "RESOLVED" in second["text"]
        else:
            assert (first["event"], second["event"]) == ("open", "close")
            assert first["fields"]["failed_step"] == "pay" and "***" in first["fields"]["error_message"]
            assert first["hidden_from_uptime"] is True and first["tags"] == {"stage": "purchase"}
    finally:
        await hook.close()
        await receiver.close()


async def test_a_refusal_is_permanent_and_a_dead_receiver_is_retried(tmp_path: Path) -> None:
    receiver = await Receiver(check_slack).start()
    hook = sink(tmp_path, receiver.url, "json")  # a json body at a Slack-like receiver: 400
    try:
        with pytest.raises(PermanentError, match="HTTP 400"):
            await hook.send(hook.encode([disruption("open")]))
        slack = sink(tmp_path, receiver.url, "slack")
        receiver.answers = [429]
        with pytest.raises(RetryableError, match="HTTP 429"):  # rate limited: later
            await slack.send(slack.encode([disruption("open")]))
        await slack.close()
    finally:
        await hook.close()
        await receiver.close()
    gone = sink(tmp_path, receiver.url, "slack")  # nobody listens there any more
    try:
        with pytest.raises(RetryableError, match="cannot reach"):
            await gone.send(gone.encode([disruption("open")]))
    finally:
        await gone.close()


def test_other_points_make_no_records(tmp_path: Path) -> None:
    from qos_agent.model import Point

    hook = sink(tmp_path, "http://127.0.0.1:1/hook", "pagerduty")
    assert hook.encode([Point("journey", (("journey", "checkout"),), (("success", False),), 1)]) == []
    record = hook.encode([disruption("open")])[0]
    body = json.loads(record)["body"]
    assert body["dedup_key"].startswith("qos-agent/agent-ap/checkout/ap-south/")
    assert "routing_key" not in body and "R0UT1NGKEY" not in record  # added when it is sent, never stored
