"""The webhook sink (`type: webhook`): each disruption's firing and resolve POSTed to a URL (no Alertmanager needed).

`format: json` posts the event itself (every field of the `disruption` point, and `key`); `slack`
posts a Slack incoming-webhook message (`text` + blocks); `pagerduty` posts a PagerDuty Events API v2
event (`trigger` on open, `resolve` on close). One `key` per disruption (PagerDuty's `dedup_key`),
shared by its firing and its resolve and kept across restarts in the sink's book
(exporters/alerts/book.py, sink.py): a resolve accepted by nobody yet is posted again every ten
minutes, an alert a restarted agent does not open again is resolved after three minutes, so every
firing is told resolved. Records hold no credential: PagerDuty's `routing_key` is added when the
event is sent, and the URL (for Slack its path is the credential) is shown as scheme://host/… only.
A receiver that sees an event twice (re-sent after `kill -9`) can drop the repeat by `key` and
`status` (json), `dedup_key` and `event_action` (PagerDuty, which does it itself).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from exporters.alerts.book import Alert
from exporters.alerts.config import WebhookSpec
from exporters.alerts.event import DisruptionEvent, iso
from exporters.alerts.sink import AlertSink, Told
from qos_agent.language.secrets import Redactor
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv
from qos_agent.sinks.http import Poster
from qos_agent.sinks.urls import host_only, url_secrets

TICK_S = 60.0  # the timer looks at the book this often
REPUT_S = 600.0  # an event no receiver accepted yet is posted again this often (a dropped resolve comes back)
GRACE_S = 180.0  # a restarted agent has this long to open a held alert again before it is resolved
# PagerDuty knows four severities; a journey's own words map onto them.
PD_SEVERITY = {"page": "critical", "critical": "critical", "error": "error", "high": "error",
               "warning": "warning", "ticket": "warning", "low": "warning", "info": "info"}


def _status(ev: DisruptionEvent) -> str:
    return "firing" if ev.state == "open" else "resolved"


def body_json(ev: DisruptionEvent, key: str, redact: Redactor, trace_url: str = "") -> dict[str, Any]:
    fields = {k: redact(v) if isinstance(v, str) else v for k, v in ev.fields.items()}
    return {"version": 1, "key": key, "event": ev.state, "status": _status(ev),
            "journey": ev.journey, "region": ev.region, "agent": ev.agent, "severity": ev.severity,
            "hidden_from_uptime": ev.hidden, "time": iso(ev.time_ms), "opened_at": iso(ev.opened_ms),
            "summary": redact(ev.summary()), "description": redact(ev.description()),
            "tags": dict(ev.tags), "fields": fields, **({"runbook_url": ev.runbook} if ev.runbook else {}),
            **({"close_reason": ev.close_reason} if ev.close_reason else {}),
            **({"trace_id": ev.trace_id} if ev.trace_id else {}), **({"trace_url": trace_url} if trace_url else {})}


def body_slack(ev: DisruptionEvent, key: str, redact: Redactor, trace_url: str = "") -> dict[str, Any]:
    icon = ":red_circle:" if ev.state == "open" else ":large_green_circle:"
    text = f"{icon} {redact(ev.summary())}"
    context = [f"agent *{ev.agent}*", f"severity *{ev.severity}*", f"opened {iso(ev.opened_ms)}"]
    if ev.runbook:
        context.append(f"<{ev.runbook}|runbook>")
    if trace_url:
        context.append(f"<{trace_url}|trace of the last failed run>")
    elif ev.trace_id:
        context.append(f"trace `{ev.trace_id}`")
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*\n{redact(ev.description())}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]}


def body_pagerduty(ev: DisruptionEvent, key: str, redact: Redactor, trace_url: str = "") -> dict[str, Any]:
    """The event without its `routing_key`: the key is added when it is sent (`WebhookSink._wire`)."""
    details = {k: redact(v) if isinstance(v, str) else v for k, v in ev.fields.items()}
    body: dict[str, Any] = {
        "event_action": "trigger" if ev.state == "open" else "resolve", "dedup_key": key, "client": "qos-agent",
        "payload": {"summary": redact(ev.summary())[:1024], "source": ev.agent or "qos-agent",
                    "severity": PD_SEVERITY.get(ev.severity.lower(), "error"), "timestamp": iso(ev.time_ms),
                    "component": ev.journey, "group": ev.region, "class": ev.error or "disruption",
                    "custom_details": {**details, **dict(ev.tags)}},
    }
    links = [{"href": ev.runbook, "text": "Runbook"}] if ev.runbook else []
    if trace_url:
        links.append({"href": trace_url, "text": "Trace of the last failed run"})
    if links:
        body["links"] = links
    return body


BODIES = {"json": body_json, "slack": body_slack, "pagerduty": body_pagerduty}


class WebhookSink(AlertSink):
    """Disruption events -> one HTTP POST each, in the configured format."""

    type: ClassVar[str] = "webhook"

    def __init__(self, spec: WebhookSpec, env: ExporterEnv) -> None:
        self.spec = spec
        super().__init__(spec.name, env, tick_s=TICK_S, reput_s=REPUT_S, grace_s=GRACE_S, firing_too=False)
        self.poster = Poster(where=self.where(), timeout_s=spec.timeout_s, mask=self.mask)

    def sink_name(self) -> str:
        return self.spec.name

    def where(self) -> str:
        return host_only(self.spec.url)

    def delivery(self) -> DeliveryOptions:
        """One event per request, in order (a refused one is dead-lettered alone), no lingering."""
        return DeliveryOptions(batch_size=1, flush_interval_s=0.0, max_spool_mb=16.0, parallel=1,
                               backoff_base_s=0.25, backoff_cap_s=10.0)

    def credentials(self) -> list[str]:
        """The URL's path and query (for Slack the path IS the credential), the routing key, the headers' values."""
        found = [*url_secrets(self.spec.url), self.spec.routing_key, *(value for _, value in self.spec.headers)]
        return [c for c in found if c]

    def body(self, alert: Alert) -> dict[str, Any]:
        event = alert.event()
        return BODIES[self.spec.format](event, alert.id, self.redact, self.env.trace_link(event.trace_id))

    def _wire(self, t: Told) -> bytes:
        """The body as posted: PagerDuty's routing key goes in here, at send time, and nowhere else."""
        body = {**t.body, "routing_key": self.spec.routing_key} if self.spec.format == "pagerduty" else t.body
        return json.dumps(body, sort_keys=True).encode()

    async def post(self, told: Sequence[Told]) -> None:
        headers = {"Content-Type": "application/json", **dict(self.spec.headers)}
        for t in told:
            await self.poster.post(self.spec.url, self._wire(t), headers)

    async def close(self) -> None:
        await super().close()
        await self.poster.close()

