"""The webhook sink (`type: webhook`): each disruption open and close POSTed to a URL, for teams without Alertmanager.

`format: json` posts the event itself (every field of the `disruption` point); `slack` posts a Slack
incoming-webhook message (`text` + blocks); `pagerduty` posts a PagerDuty Events API v2 event
(`trigger` on open, `resolve` on close, one `dedup_key` per disruption, so PagerDuty pairs them).
The body is made when the point arrives (`encode`) and kept by the core's durable store, without
credentials: PagerDuty's `routing_key` is added when it is sent, and the URL (for Slack its path is
the credential) is shown as scheme://host/… only. `send` posts one body per request; the answer goes
through the one send policy (qos_agent/sinks/policy.py), like every sink's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from exporters.alerts.config import WebhookSpec
from exporters.alerts.event import DisruptionEvent, iso
from qos_agent.errors import PermanentError
from qos_agent.language.secrets import Redactor
from qos_agent.language.text import shown as quoted
from qos_agent.model import Point
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink
from qos_agent.sinks.http import Poster
from qos_agent.sinks.urls import host_only, url_secrets

# PagerDuty knows four severities; a journey's own words map onto them.
PD_SEVERITY = {"page": "critical", "critical": "critical", "error": "error", "high": "error",
               "warning": "warning", "ticket": "warning", "low": "warning", "info": "info"}


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


def body_pagerduty(ev: DisruptionEvent, redact: Redactor) -> dict[str, Any]:
    """The event without its `routing_key`: the key is added when it is sent (`with_routing_key`)."""
    details = {k: redact(v) if isinstance(v, str) else v for k, v in ev.fields.items()}
    body: dict[str, Any] = {
        "event_action": "trigger" if ev.state == "open" else "resolve",
        "dedup_key": dedup_key(ev), "client": "qos-agent",
        "payload": {"summary": redact(ev.summary())[:1024], "source": ev.agent or "qos-agent",
                    "severity": PD_SEVERITY.get(ev.severity.lower(), "error"), "timestamp": iso(ev.time_ms),
                    "component": ev.journey, "group": ev.region, "class": ev.error or "disruption",
                    "custom_details": {**details, **dict(ev.tags)}},
    }
    if ev.runbook:
        body["links"] = [{"href": ev.runbook, "text": "Runbook"}]
    return body


class WebhookSink(NetworkSink):
    """Disruption events -> one HTTP POST each, in the configured format."""

    type: ClassVar[str] = "webhook"

    def __init__(self, spec: WebhookSpec, env: ExporterEnv) -> None:
        self.spec = spec
        self.redact = env.redact
        self.poster = Poster(where=host_only(spec.url), timeout_s=spec.timeout_s,
                             mask=Redactor(self.credentials(), parent=env.redact))

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        """One event per request, in order (a refused one is dead-lettered alone), no lingering."""
        return DeliveryOptions(batch_size=1, flush_interval_s=0.0, max_spool_mb=16.0, parallel=1,
                               backoff_base_s=0.25, backoff_cap_s=10.0)

    def credentials(self) -> list[str]:
        """The URL's path and query (for Slack the path IS the credential), the routing key, the headers' values."""
        found = [*url_secrets(self.spec.url), self.spec.routing_key, *(value for _, value in self.spec.headers)]
        return [c for c in found if c]

    def encode(self, points: Sequence[Point]) -> list[str]:
        """Disruption points -> the bodies to post (everything else: nothing), without credentials."""
        out = []
        for point in points:
            ev = DisruptionEvent.of(point)
            if ev is None:
                continue
            if self.spec.format == "slack":
                body = body_slack(ev, self.redact)
            elif self.spec.format == "pagerduty":
                body = body_pagerduty(ev, self.redact)
            else:
                body = body_json(ev, self.redact)
            out.append(json.dumps(body, sort_keys=True))
        return out

    def _wire(self, record: str) -> bytes:
        """The body as posted: PagerDuty's routing key goes in here, at send time, and nowhere else."""
        if self.spec.format != "pagerduty":
            return record.encode()
        try:
            body = json.loads(record)
            if not isinstance(body, dict):
                raise TypeError("not an object")
        except (ValueError, TypeError) as e:
            raise PermanentError(f"not a webhook record ({e}): {quoted(record[:200])}") from None
        return json.dumps({**body, "routing_key": self.spec.routing_key}, sort_keys=True).encode()

    async def send(self, records: Sequence[str]) -> None:
        headers = {"Content-Type": "application/json", **dict(self.spec.headers)}
        for record in records:
            await self.poster.post(self.spec.url, self._wire(record), headers)

    async def close(self) -> None:
        await self.poster.close()
