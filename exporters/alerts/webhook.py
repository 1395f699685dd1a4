"""The webhook sink (`type: webhook`): each disruption open and close POSTed to a URL, for teams without Alertmanager.

`format: json` posts the event itself (every field of the `disruption` point); `slack` posts a Slack
incoming-webhook message (`text` + blocks); `pagerduty` posts a PagerDuty Events API v2 event
(`trigger` on open, `resolve` on close, one `dedup_key` per disruption, so PagerDuty pairs them).
The body is made when the point arrives (`encode`) and kept by the core's durable store; `send`
posts one body per request. A 4xx goes to the dead letter with the receiver's reason (it will never
be accepted as it is); 5xx, 408, 429 and connection failures are retried by the core.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from exporters.alerts.common import DisruptionEvent, check_url, iso, post_json
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.secrets import Redactor
from qos_agent.model import Point
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink

KEYS = ("type", "name", "url", "format", "headers", "routing_key", "timeout")
FORMATS = ("json", "slack", "pagerduty")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
# PagerDuty knows four severities; a journey's own words map onto them.
PD_SEVERITY = {"page": "critical", "critical": "critical", "error": "error", "high": "error",
               "warning": "warning", "ticket": "warning", "low": "warning", "info": "info"}


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    name: str
    format: str = "json"
    headers: tuple[tuple[str, str], ...] = ()
    routing_key: str = ""
    timeout_s: float = 10.0


def body_json(ev: DisruptionEvent, redact: Redactor) -> dict[str, Any]:
    fields = {k: redact(v) if isinstance(v, str) else v for k, v in ev.fields.items()}
    return {"version": 1, "event": ev.state, "status": "firing" if ev.state == "open" else "resolved",
            "journey": ev.journey, "region": ev.region, "agent": ev.agent, "severity": ev.severity,
            "hidden_from_uptime": ev.hidden, "time": iso(ev.time_ms), "opened_at": iso(ev.opened_ms),
            "summary": redact(ev.summary()), "description": redact(ev.description()),
            "tags": dict(ev.tags), "fields": fields, **({"runbook_url": ev.runbook} if ev.runbook else {})}


def body_slack(ev: DisruptionEvent, redact: Redactor) -> dict[str, Any]:
    icon = ":red_circle:" if ev.state == "open" else ":large_green_circle:"
    text = f"{icon} {redact(ev.summary())}"
    context = [f"agent *{ev.agent}*", f"severity *{ev.severity}*", f"opened {iso(ev.opened_ms)}"]
    if ev.runbook:
        context.append(f"<{ev.runbook}|runbook>")
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*\n{redact(ev.description())}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]}


def dedup_key(ev: DisruptionEvent) -> str:
    """One per disruption: the same on its trigger and its resolve, another for the next disruption."""
    return f"qos-agent/{ev.agent}/{ev.journey}/{ev.region}/{ev.opened_ms}"


def body_pagerduty(ev: DisruptionEvent, redact: Redactor, routing_key: str) -> dict[str, Any]:
    details = {k: redact(v) if isinstance(v, str) else v for k, v in ev.fields.items()}
    body: dict[str, Any] = {
        "routing_key": routing_key, "event_action": "trigger" if ev.state == "open" else "resolve",
        "dedup_key": dedup_key(ev), "client": "qos-agent",
        "payload": {"summary": redact(ev.summary())[:1024], "source": ev.agent or "qos-agent",
                    "severity": PD_SEVERITY.get(ev.severity.lower(), "error"), "timestamp": iso(ev.time_ms),
                    "component": ev.journey, "group": ev.region, "class": ev.error or "disruption",
                    "custom_details": {**details, **dict(ev.tags)}},
    }
    if ev.runbook:
        body["links"] = [{"href": ev.runbook, "text": "Runbook"}]
    return body


class WebhookSink(NetworkSink[WebhookSpec]):
    """Disruption events -> one HTTP POST each, in the configured format."""

    type: ClassVar[str] = "webhook"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> WebhookSpec | None:
        r = Reader(node, problems, KEYS, "webhook exporter")
        if not r.ok:
            return None
        before = len(problems)
        fmt = r.choice("format", FORMATS, "json")
        if not r.has("url") and fmt != "pagerduty":
            problems.add(node.loc, "webhook exporter needs 'url'", "add url: ${ALERT_WEBHOOK_URL}")
        url = check_url(r.get("url"), r.str("url", PAGERDUTY_URL if fmt == "pagerduty" else ""), problems,
                        "url: https://hooks.example/alerts")
        routing_key = r.str("routing_key")
        if fmt == "pagerduty" and not routing_key:
            problems.add(node.loc, "format: pagerduty needs 'routing_key'",
                         "add routing_key: ${PAGERDUTY_ROUTING_KEY} (the integration key of a PagerDuty service)")
        if fmt != "pagerduty" and r.has("routing_key"):
            problems.add(node.key_loc("routing_key"), f"'routing_key' belongs to format: pagerduty, not {fmt}",
                         "remove it or write format: pagerduty")
        name = r.str("name") or f"webhook-{fmt}-{hashlib.sha1(url.encode()).hexdigest()[:8]}"
        spec = WebhookSpec(url=url, name=name, format=fmt, headers=tuple(r.str_map("headers").items()),
                           routing_key=routing_key, timeout_s=r.duration("timeout", 10.0))
        return spec if len(problems) == before else None

    @classmethod
    def create(cls, spec: WebhookSpec, env: ExporterEnv) -> WebhookSink:
        return cls(spec, env)

    def __init__(self, spec: WebhookSpec, env: ExporterEnv) -> None:
        self.spec = spec
        self.redact = env.redact
        self._session: aiohttp.ClientSession | None = None

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        """One event per request, in order (a refused one is dead-lettered alone), no lingering."""
        return DeliveryOptions(batch_size=1, flush_interval_s=0.0, max_spool_mb=16.0, parallel=1,
                               backoff_base_s=0.25, backoff_cap_s=10.0)

    def encode(self, points: Sequence[Point]) -> list[str]:
        """Disruption points -> the bodies to post (everything else: nothing)."""
        out = []
        for point in points:
            ev = DisruptionEvent.of(point)
            if ev is None:
                continue
            if self.spec.format == "slack":
                body = body_slack(ev, self.redact)
            elif self.spec.format == "pagerduty":
                body = body_pagerduty(ev, self.redact, self.spec.routing_key)
            else:
                body = body_json(ev, self.redact)
            out.append(json.dumps(body, sort_keys=True))
        return out

    async def send(self, records: Sequence[str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.spec.timeout_s))
        for record in records:
            await post_json(self._session, self.spec.url, record.encode(), dict(self.spec.headers))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
