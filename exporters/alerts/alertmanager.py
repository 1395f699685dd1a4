"""The Alertmanager sink (`type: alertmanager`): each open disruption is one alert, firing then resolved.

API v2, `POST /api/v2/alerts`. An alert is identified by its labels (`alertname="JourneyDisruption"`,
journey, region, agent, severity, hidden_from_uptime, the journey's tags, the sink's `labels`);
`startsAt` is when the disruption opened. While it is open the sink re-sends it every `resend` with an
`endsAt` a few resends ahead (Alertmanager resolves an alert nobody refreshes, so a dead agent's
alerts end by themselves); on close it is sent once more with `endsAt` = the close time.

Durability and retries are the core's (the records wait in the sink's durable store while
Alertmanager is away). `endsAt` of a firing alert is stamped when it is sent, not when it was
stored, so a record delivered late still fires; and a firing record whose disruption has closed
since is not sent at all, so a late re-send never re-opens a resolved alert. Which alerts are open
lives in a state file (exporters/alerts/state.py) so a restarted agent re-sends them and resolves
those it does not open again. `urls: [a, b]` (an HA pair) makes one sink per instance: each has its
own durable queue, so one instance down never holds back or loses the other's alerts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from exporters.alerts.config import AlertmanagerSpec
from exporters.alerts.event import DisruptionEvent, iso
from exporters.alerts.state import Held, OpenAlerts
from qos_agent.errors import PermanentError
from qos_agent.language.secrets import Redactor
from qos_agent.language.text import shown as quoted
from qos_agent.model import Point
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink, Outbox
from qos_agent.sinks.http import Poster
from qos_agent.sinks.labels import is_reserved, label_name
from qos_agent.sinks.urls import without_userinfo

log = logging.getLogger(__name__)

ENDS_AHEAD = 4  # a firing alert's endsAt is this many resends ahead of its send
# After a restart, held alerts wait this many resends for the evaluator to open them again (two failed
# runs at intervals up to 1.5 resends) before they are resolved; less than ENDS_AHEAD, so none lapses.
RESTART_GRACE = 3
ALERTNAME = "JourneyDisruption"
FIX = "check url and auth; alerts wait until it works"


class AlertmanagerSink(NetworkSink):
    """Disruptions -> Alertmanager alerts, through the core's durable delivery."""

    type: ClassVar[str] = "alertmanager"

    def __init__(self, spec: AlertmanagerSpec, env: ExporterEnv) -> None:
        self.spec = spec
        self.env = env
        self.redact = env.redact
        self.where = without_userinfo(spec.url)
        self.mask = Redactor(self.credentials(), parent=env.redact)
        self.state = OpenAlerts(env.state_dir / "alerts" / f"{spec.name}.json")
        self.outbox: Outbox | None = None
        self.poster = Poster(where=self.where, timeout_s=spec.timeout_s, fix=FIX, mask=self.mask)
        self._timer: asyncio.Task[None] | None = None

    def credentials(self) -> list[str]:
        auth = self.spec.authorization
        return [c for c in (auth, auth.partition(" ")[2]) if c]

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        """Alerts are few and urgent: no lingering, one request at a time (in order), short backoff."""
        return DeliveryOptions(batch_size=64, flush_interval_s=0.0, max_spool_mb=16.0, parallel=1,
                               backoff_base_s=0.25, backoff_cap_s=5.0)

    # -- records ------------------------------------------------------------------------------------------
    def _labels(self, ev: DisruptionEvent) -> dict[str, str]:
        labels = dict(self.spec.labels)
        labels.update({label_name(k): v for k, v in ev.tags if not is_reserved(label_name(k))})
        labels.update(alertname=ALERTNAME, journey=ev.journey, region=ev.region, agent=ev.agent,
                      severity=ev.severity, hidden_from_uptime="true" if ev.hidden else "false")
        return labels

    def _annotations(self, ev: DisruptionEvent) -> dict[str, str]:
        notes = {"summary": ev.summary(), "description": ev.description(), "reason": ev.reason,
                 "failed_step": ev.failed_step, "error": ev.error, "error_message": ev.error_message,
                 "runbook_url": ev.runbook}
        return {k: self.redact(v) for k, v in notes.items() if v}

    @staticmethod
    def _record(kind: str, key: str, held: Held, ends_at: str = "") -> str:
        alert: dict[str, Any] = {"labels": held.labels, "annotations": held.annotations, "startsAt": held.starts_at}
        if ends_at:
            alert["endsAt"] = ends_at
        return json.dumps({"k": kind, "key": key, "alert": alert}, sort_keys=True)

    def encode(self, points: Sequence[Point]) -> list[str]:
        """Disruption points -> alert records (everything else: nothing). Runs on a worker thread.

        The state file is rewritten once per call (one fsync for a burst of disruptions), before the
        records are returned to be stored: a crash after it leaves at worst an alert held that no
        record announced, which the next start re-sends and then resolves.
        """
        out = []
        with self.state.lock:
            changed = False
            for point in points:
                ev = DisruptionEvent.of(point)
                if ev is None:
                    continue
                held = self.state.held.get(ev.key)
                labels = held.labels if held else self._labels(ev)
                starts = held.starts_at if held else iso(ev.opened_ms)
                now = Held(labels=labels, annotations=self._annotations(ev), starts_at=starts)
                if ev.state == "open":
                    # An alert a restarted agent found in its file and opens again keeps its labels and start.
                    self.state.held[ev.key] = now
                    out.append(self._record("firing", ev.key, now))
                else:
                    self.state.held.pop(ev.key, None)
                    out.append(self._record("resolved", ev.key, now, iso(max(ev.time_ms, ev.opened_ms + 1))))
                changed = True
            if changed:
                self.state.save()
        return out

    # -- sending ------------------------------------------------------------------------------------------
    async def send(self, records: Sequence[str]) -> None:
        """POST the batch's alerts in one request; firing ones get a fresh endsAt, stale ones are left out."""
        ends = iso((time.time() + ENDS_AHEAD * self.spec.resend_s) * 1000)
        alerts: dict[tuple[str, str], dict[str, Any]] = {}
        for record in records:
            try:
                r = json.loads(record)
                key, alert = str(r["key"]), dict(r["alert"])
                if r["k"] == "firing":
                    if self.state.current_start(key) != alert["startsAt"]:
                        continue  # closed (or replaced) since it was stored: never re-open a resolved alert
                    alert["endsAt"] = ends
            except (ValueError, KeyError, TypeError) as e:
                raise PermanentError(f"not an alert record ({e}): {quoted(record[:200])}") from e
            alerts[(key, alert["startsAt"])] = alert  # the newest record of one alert wins
        if not alerts:
            return
        headers = {"Content-Type": "application/json"}
        if self.spec.authorization:
            headers["Authorization"] = self.spec.authorization  # added per request, never stored
        await self.poster.post(self.spec.url + "/api/v2/alerts", json.dumps(list(alerts.values())).encode(), headers)

    # -- the resend timer ---------------------------------------------------------------------------------
    async def start(self, outbox: Outbox) -> None:
        """Load what a previous run held open, then re-send every `resend` (and let go of orphans)."""
        self.outbox = outbox
        grace = RESTART_GRACE * self.spec.resend_s
        held = await asyncio.to_thread(self.state.load, grace)
        if held:
            log.info("alertmanager %s: %d alerts held open by the previous run; resolving those not opened again "
                     "within %.0fs", self.where, len(held), grace)
        if self._timer is None:
            self._timer = asyncio.create_task(self._resend_loop(), name=f"resend-{self.spec.name}")

    async def _resend_loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as e:  # the timer must outlive one failed put
                log.error("alertmanager %s: re-sending open alerts failed: %s", self.where, self.mask(str(e)))
            await asyncio.sleep(self.spec.resend_s)

    async def tick(self, now_s: float | None = None) -> None:
        """One resend: firing records for every held alert; resolved ones for orphans past their grace."""
        if self.outbox is None:
            return
        when = time.time() if now_s is None else now_s
        gone = await asyncio.to_thread(self.state.expired_orphans, when)
        now = iso(time.time() * 1000)  # endsAt: the real now, so Alertmanager resolves it at once
        records = [self._record("resolved", key, h, max(now, h.starts_at)) for key, h in gone.items()]
        records += [self._record("firing", key, h) for key, h in self.state.snapshot().items()]
        if records:
            await self.outbox.put(records)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        await self.poster.close()
