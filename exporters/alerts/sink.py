"""What both alert sinks do: keep the book of their alerts and tell the receiver its current state.

`encode` turns disruption points into book changes and records (on the store's worker thread); the
core's durable delivery sends the records; `send` leaves out a record with nothing left to tell (its
alert told resolved already, or opened again since; for Alertmanager a firing whose alert has closed,
which would re-open it; for a webhook an opening already told) and marks the receiver told once it
accepted; the timer (`tick`) puts the current state in
the outbox again — resolves not yet accepted, orphans a restart left, and for Alertmanager every
firing alert — so what a spool bound dropped comes back. The book: exporters/alerts/book.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from exporters.alerts.book import FIRING, RESOLVED, Alert, AlertBook
from exporters.alerts.event import DisruptionEvent
from qos_agent.errors import PermanentError
from qos_agent.language.secrets import Redactor
from qos_agent.language.text import shown as quoted
from qos_agent.model import Point
from qos_agent.plugins.sinks import ExporterEnv, NetworkSink, Outbox

log = logging.getLogger(__name__)


class Told:
    """One stored record read back: which alert, in which status, from which opening, and its body."""

    def __init__(self, record: str) -> None:
        try:
            r = json.loads(record)
            self.status, self.id, self.starts = str(r["k"]), str(r["id"]), str(r["starts"])
            self.body: dict[str, Any] = dict(r["body"])
        except (ValueError, KeyError, TypeError) as e:
            raise PermanentError(f"not an alert record ({e}): {quoted(record[:200])}") from None


class AlertSink(NetworkSink):
    """The book, the records and the timer shared by the alertmanager and webhook sinks."""

    def __init__(self, name: str, env: ExporterEnv, *, tick_s: float, reput_s: float, grace_s: float,
                 firing_too: bool) -> None:
        """Call after the subclass has its spec (`credentials()` reads it)."""
        self.env = env
        self.redact = env.redact
        self.mask = Redactor(self.credentials(), parent=env.redact)
        self.book = AlertBook(env.state_dir / "alerts" / f"{name}.json", self.redact)
        self.outbox: Outbox | None = None
        self.tick_s = tick_s  # how often the timer looks at the book
        self.reput_s = reput_s  # a record not yet accepted is put in the outbox again this often
        self.grace_s = grace_s  # how long a restarted agent has to open a held alert again
        self.firing_too = firing_too  # every tick re-sends every firing alert (Alertmanager)
        self._timer: asyncio.Task[None] | None = None

    # -- what each sink says -----------------------------------------------------------------------------
    def labels(self, ev: DisruptionEvent) -> dict[str, str]:
        """The labels an alert opens with (kept while it is open); default: none."""
        return {}

    def body(self, alert: Alert) -> dict[str, Any]:
        """The body that tells the receiver the alert's current status (no credential in it)."""
        raise NotImplementedError

    async def post(self, told: Sequence[Told]) -> None:
        """Deliver these records (already filtered), or raise RetryableError / PermanentError."""
        raise NotImplementedError

    def where(self) -> str:
        """The receiver as it may be shown in a log line."""
        raise NotImplementedError

    # -- records --------------------------------------------------------------------------------------------
    def record(self, alert: Alert) -> str:
        return json.dumps({"k": alert.status, "id": alert.id, "starts": alert.starts_at, "body": self.body(alert)},
                          sort_keys=True)

    def encode(self, points: Sequence[Point]) -> list[str]:
        """Disruption points -> book changes and records (everything else: nothing). Worker thread.

        The book is saved once per call (one fsync for a burst), before the records are returned to be
        stored: a crash between leaves the book ahead, and the timer puts its state out again."""
        out = []
        now = time.time()
        with self.book.lock:
            for point in points:
                ev = DisruptionEvent.of(point)
                if ev is None:
                    continue
                change = self.book.opened if ev.state == "open" else self.book.closed
                alert = change(point, ev, self.labels(ev))
                alert.put_s = now
                out.append(self.record(alert))
            if out:
                self.book.save()
        return out

    def _wanted(self, t: Told) -> bool:
        """Whether a stored record still has something to tell (call with the book's lock held)."""
        a = self.book.alerts.get(t.id)
        if a is None or a.starts_at != t.starts:
            return False  # told resolved already, or another opening since
        if t.status != FIRING:
            return a.status != FIRING and not a.told  # a resolve is told once (a repeated close is not news)
        if self.firing_too:  # Alertmanager: a firing after the resolve would re-open the alert
            return a.status == FIRING
        return not (a.status == FIRING and a.told)  # a webhook tells an opening once, closed since or not

    async def send(self, records: Sequence[str]) -> None:
        told = [Told(r) for r in records]
        with self.book.lock:
            current = [t for t in told if self._wanted(t)]
        if current:
            await self.post(current)
        with self.book.lock:
            if [t for t in current if self.book.told(t.id, t.status, t.starts)]:
                self.book.save()

    # -- the timer ------------------------------------------------------------------------------------------
    async def start(self, outbox: Outbox) -> None:
        """Load what a previous run kept, then put the current state out at once and every tick."""
        self.outbox = outbox
        held = await asyncio.to_thread(self.book.load, self.grace_s)
        firing = sum(1 for a in held if a.status == FIRING)
        if held:
            log.info("%s %s: %d alerts kept by the previous run (%d firing: resolved unless opened again within "
                     "%.0fs)", self.type, self.where(), len(held), firing, self.grace_s)
        if self._timer is None:
            self._timer = asyncio.create_task(self._tick_loop(), name=f"resend-{self.sink_name()}")

    async def _tick_loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as e:  # the timer must outlive one failed put
                log.error("%s %s: re-sending the alerts' state failed: %s", self.type, self.where(), self.mask(str(e)))
            await asyncio.sleep(self.tick_s)

    async def tick(self, now_s: float | None = None) -> None:
        """Put the current state in the outbox: orphans past their grace resolved, what is not yet told."""
        if self.outbox is None:
            return
        when = time.time() if now_s is None else now_s
        with self.book.lock:
            gone = self.book.expire(when)
            if self.book.forget(when) or gone:
                self.book.save()
            due = {a.id: a for a in (*gone, *self.book.due(when, self.reput_s, self.firing_too))}
            # Resolves last: if this burst meets the spool bound, the oldest records are the ones dropped.
            records = [self.record(a) for a in sorted(due.values(), key=lambda a: a.status == RESOLVED)]
        if records:
            await self.outbox.put(records)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
