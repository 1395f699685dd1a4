"""The Alertmanager sink (`type: alertmanager`): each disruption is one alert, firing then resolved.

API v2, `POST /api/v2/alerts`. An alert is identified by its labels (`alertname="JourneyDisruption"`,
journey, region, agent, severity, hidden_from_uptime, the journey's tags, the sink's `labels`);
`startsAt` is when the disruption opened. While it is open the sink re-sends it every `resend` with an
`endsAt` a few resends ahead (Alertmanager resolves an alert nobody refreshes, so a dead agent's
alerts end by themselves); on close (healed, or its journey removed from this agent) it is sent
with `endsAt` = the close time, every `resend` until Alertmanager accepted it.

What is sent is the current state of the sink's book (exporters/alerts/book.py, sink.py), kept in
`state_dir/alerts/<name>.json`: a restarted agent re-sends what it held at once, keeps an alert the
new process opens again (labels, `startsAt`), resolves at once one the new process closes, and
resolves the others after three `resend`s. `endsAt` of a firing alert is stamped when it is sent,
so a record delivered late still fires; a record whose alert has changed since is left out, so a late
firing never re-opens a resolved alert. `urls: [a, b]` (an HA pair) makes one sink per instance.
An alert's id for a receiver that sees it twice is Alertmanager's own: its labels (and `startsAt`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from exporters.alerts.book import RESOLVED, Alert
from exporters.alerts.config import AlertmanagerSpec
from exporters.alerts.event import DisruptionEvent, iso
from exporters.alerts.sink import AlertSink, Told
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv
from qos_agent.sinks.http import Poster
from qos_agent.sinks.labels import is_reserved, label_name
from qos_agent.sinks.urls import without_userinfo

ENDS_AHEAD = 4  # a firing alert's endsAt is this many resends ahead of its send
# After a restart, held alerts wait this many resends for the evaluator to open them again (two failed
# runs at intervals up to 1.5 resends) before they are resolved; less than ENDS_AHEAD, so none lapses.
RESTART_GRACE = 3
ALERTNAME = "JourneyDisruption"
FIX = "check url and auth; alerts wait until it works"


class AlertmanagerSink(AlertSink):
    """Disruptions -> Alertmanager alerts, through the core's durable delivery."""

    type: ClassVar[str] = "alertmanager"

    def __init__(self, spec: AlertmanagerSpec, env: ExporterEnv) -> None:
        self.spec = spec
        super().__init__(spec.name, env, tick_s=spec.resend_s, reput_s=spec.resend_s,
                         grace_s=RESTART_GRACE * spec.resend_s, firing_too=True)
        self.poster = Poster(where=self.where(), timeout_s=spec.timeout_s, fix=FIX, mask=self.mask)

    def credentials(self) -> list[str]:
        auth = self.spec.authorization
        return [c for c in (auth, auth.partition(" ")[2]) if c]

    def where(self) -> str:
        return without_userinfo(self.spec.url)

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        """Alerts are few and urgent: no lingering, one request at a time (in order), short backoff."""
        return DeliveryOptions(batch_size=64, flush_interval_s=0.0, max_spool_mb=16.0, parallel=1,
                               backoff_base_s=0.25, backoff_cap_s=5.0)

    def labels(self, ev: DisruptionEvent) -> dict[str, str]:
        labels = dict(self.spec.labels)
        labels.update({label_name(k): v for k, v in ev.tags if not is_reserved(label_name(k))})
        labels.update(alertname=ALERTNAME, journey=ev.journey, region=ev.region, agent=ev.agent,
                      severity=ev.severity, hidden_from_uptime="true" if ev.hidden else "false")
        return labels

    def _annotations(self, ev: DisruptionEvent) -> dict[str, str]:
        notes = {"summary": ev.summary(), "description": ev.description(), "reason": ev.reason,
                 "failed_step": ev.failed_step, "error": ev.error, "error_message": ev.error_message,
                 "runbook_url": ev.runbook, "close_reason": ev.close_reason,
                 # The last failed run's trace: from the page to the backend's side of the failure.
                 "trace_id": ev.trace_id, "trace_url": self.env.trace_link(ev.trace_id)}
        return {k: self.redact(v) for k, v in notes.items() if v}

    def body(self, alert: Alert) -> dict[str, Any]:
        out: dict[str, Any] = {"labels": alert.labels, "annotations": self._annotations(alert.event()),
                               "startsAt": alert.starts_at}
        if alert.status == RESOLVED:
            out["endsAt"] = alert.ends_at
        return out

    async def post(self, told: Sequence[Told]) -> None:
        """One request for the batch; a firing alert gets its endsAt now, a few resends ahead."""
        ends = iso((time.time() + ENDS_AHEAD * self.spec.resend_s) * 1000)
        alerts: dict[str, dict[str, Any]] = {}
        for t in told:
            alerts[t.id] = {**t.body, "endsAt": ends} if t.status != RESOLVED else t.body  # the newest wins
        headers = {"Content-Type": "application/json"}
        if self.spec.authorization:
            headers["Authorization"] = self.spec.authorization  # added per request, never stored
        await self.poster.post(self.spec.url + "/api/v2/alerts", json.dumps(list(alerts.values())).encode(), headers)

    async def close(self) -> None:
        await super().close()
        await self.poster.close()
