"""What an alert sink has told its receiver, kept in state_dir, so every firing is told resolved.

Receivers are told each alert's *current state* from this book, not a replayed queue. An alert is
firing from its open point until a close point (`close_reason` healed or removed) or, after a
restart, until a grace passes without the new process opening it again; then it is resolved, and
the resolve stays here (and is put in the outbox again) until the receiver has accepted it. So a
spool bound that drops the oldest records can delay a resolve but never lose it. An accepted
resolve stays a while longer (KEEP_TOLD_S), so the closes a restarted agent repeats after a
`kill -9` are recognised and not posted again.

Each alert has an `id` shared by its firing and its resolve (a webhook's `key`, PagerDuty's
`dedup_key`), made when it first opens and kept across restarts: a disruption the restarted agent
opens again (same agent, journey and region) keeps its id, labels and `startsAt`.

The file (`state_dir/alerts/<sink>.json`) is rewritten whole on every change, atomically (temp file,
fsync, rename), so a `kill -9` leaves it before or after a change. The book is touched from the
store's worker thread (`encode`) and the event loop (send, the resend timer): `lock`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from exporters.alerts.event import DisruptionEvent, iso
from qos_agent.model import Point

log = logging.getLogger(__name__)

FIRING, RESOLVED = "firing", "resolved"
RESTART = "restart"  # close_reason of an alert a restarted agent did not open again within the grace
# A resolve the receiver accepted stays in the book this long after its end, so a close the evaluator
# repeats after a kill -9 (the closes of its last ten minutes) is known as told and not posted again.
KEEP_TOLD_S = 15 * 60.0


def point_data(point: Point, redact: Callable[[str], str]) -> dict[str, Any]:
    """A point as the book keeps it (its strings masked: the file is on disk)."""
    fields = [[k, redact(v) if isinstance(v, str) else v] for k, v in point.fields]
    return {"m": point.measurement, "tags": [list(t) for t in point.tags], "fields": fields, "t": point.time_ms}


def data_point(data: dict[str, Any]) -> Point:
    return Point(str(data["m"]), tuple((str(k), str(v)) for k, v in data["tags"]),
                 tuple((str(k), v) for k, v in data["fields"]), int(data["t"]))


@dataclass(slots=True)
class Alert:
    id: str  # shared by its firing and its resolve; stable across restarts
    event_key: str  # agent/journey/region: which disruption (one open at a time)
    point: dict[str, Any]  # its newest disruption point (point_data): every body is made from it
    labels: dict[str, str]  # the labels it opened with (Alertmanager identifies an alert by them)
    starts_at: str  # RFC 3339, when it opened
    status: str = FIRING
    ends_at: str = ""  # resolved: when
    told: bool = False  # the receiver accepted the current status (a resolved one leaves after KEEP_TOLD_S)
    orphan_until: float | None = field(default=None, compare=False)  # loaded firing at start: the grace
    put_s: float = field(default=0.0, compare=False)  # when a record of it was last put in the outbox

    def event(self) -> DisruptionEvent:
        ev = DisruptionEvent.of(data_point(self.point))
        assert ev is not None  # only disruption points are kept
        return ev


def alert_id(ev: DisruptionEvent) -> str:
    """A new disruption's id: agent, journey, region and when it opened (never reused for another)."""
    return f"qos-agent/{ev.agent}/{ev.journey}/{ev.region}/{ev.opened_ms}"


def _from_v1(key: str, held: dict[str, Any]) -> Alert:
    labels, starts = dict(held["labels"]), str(held["starts_at"])
    opened_ms = int(datetime.fromisoformat(starts.replace("Z", "+00:00")).timestamp() * 1000)
    tags = tuple(sorted({"agent": labels.get("agent", ""), "journey": labels.get("journey", ""),
                         "region": labels.get("region", ""), "state": "open"}.items()))
    reason = str(dict(held.get("annotations", {})).get("reason", ""))
    point = Point("disruption", tags, (("reason", reason), ("opened_ms", opened_ms)), opened_ms)
    return Alert(id=key, event_key=key, point=point_data(point, str), labels=labels, starts_at=starts, told=True)


class AlertBook:
    """The alerts of one sink, mirrored to its state file (call the changing methods with `lock` held)."""

    def __init__(self, path: Path, redact: Callable[[str], str]) -> None:
        self.path = path
        self.redact = redact
        self.lock = threading.Lock()
        self.alerts: dict[str, Alert] = {}

    def load(self, grace_s: float) -> list[Alert]:
        """Read what a previous run kept; its firing alerts become orphans until now + grace_s."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("version") == 1:  # what an alertmanager sink before this book kept: firing alerts
                found = [_from_v1(key, held) for key, held in raw["alerts"].items()]
            else:
                found = [Alert(**{k: v for k, v in a.items() if k not in ("orphan_until", "put_s")})
                         for a in raw["alerts"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.error("alert state %s is unreadable (%s); starting with no open alerts", self.path, e)
            return []
        until = time.time() + grace_s
        with self.lock:
            for a in found:
                if a.status == FIRING:
                    a.orphan_until = until
                self.alerts.setdefault(a.id, a)
            return found

    def save(self) -> None:
        """Atomically rewrite the file from the book (call with the lock held)."""
        data = {"version": 2, "alerts": [{k: v for k, v in asdict(a).items() if k not in ("orphan_until", "put_s")}
                                         for a in self.alerts.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:  # the alert still goes out; only a restart could then miss it
            log.error("cannot write alert state %s: %s", self.path, e)

    def _open_one(self, event_key: str) -> Alert | None:
        return next((a for a in self.alerts.values() if a.event_key == event_key and a.status == FIRING), None)

    def opened(self, point: Point, ev: DisruptionEvent, labels: dict[str, str]) -> Alert:
        """An open point: the alert it is (one still firing keeps its id, labels and start)."""
        held = self._open_one(ev.key)
        if held is not None:
            held.point, held.orphan_until = point_data(point, self.redact), None
            return held
        new = Alert(id=alert_id(ev), event_key=ev.key, point=point_data(point, self.redact), labels=labels,
                    starts_at=iso(ev.opened_ms))
        while new.id in self.alerts:  # the same opening told twice: a distinct id all the same
            new.id += "+"
        self.alerts[new.id] = new
        return new

    def closed(self, point: Point, ev: DisruptionEvent, labels: dict[str, str]) -> Alert:
        """A close point (healed, removed): the firing alert of its journey becomes resolved; with none
        (its state was lost), a resolve of its own, so a receiver that saw it open hears it closed. A
        close of a disruption that opened before the firing one (repeated after a kill -9 while a newer
        one is open) is that earlier disruption's: it never resolves the newer one."""
        held = self._open_one(ev.key)
        if held is not None and ev.opened_ms < held.event().opened_ms:
            held = None  # the firing alert is a later disruption of this journey
        known = self.alerts.get(alert_id(ev))
        if held is None and known is not None and known.status == RESOLVED:
            return known  # closed already (a close repeated after a kill -9): nothing new to tell
        if held is None:
            held = Alert(id=alert_id(ev), event_key=ev.key, point=point_data(point, self.redact), labels=labels,
                         starts_at=iso(ev.opened_ms))
            self.alerts.setdefault(held.id, held)
        held.point, held.status, held.told, held.orphan_until = point_data(point, self.redact), RESOLVED, False, None
        held.ends_at = iso(max(ev.time_ms, ev.opened_ms + 1))
        return held

    def expire(self, now_s: float) -> list[Alert]:
        """Orphans past their grace (the restarted agent did not open them again): resolved now."""
        gone = [a for a in self.alerts.values() if a.orphan_until is not None and a.orphan_until <= now_s]
        for a in gone:
            p = data_point(a.point)
            tags = tuple((k, "close" if k == "state" else v) for k, v in p.tags)
            fields = (*(f for f in p.fields if f[0] != "close_reason"), ("close_reason", RESTART))
            ended_ms = min(now_s, time.time()) * 1000  # never in the future: the receiver resolves it at once
            a.point = point_data(Point(p.measurement, tags, fields, int(ended_ms)), self.redact)
            a.status, a.told, a.orphan_until = RESOLVED, False, None
            a.ends_at = max(iso(ended_ms), a.starts_at)
        return gone

    def told(self, alert: str, status: str, starts_at: str) -> bool:
        """The receiver accepted this record. Whether the book changed."""
        a = self.alerts.get(alert)
        if a is None or a.status != status or a.starts_at != starts_at or a.told:
            return False
        a.told = True
        return True

    def forget(self, now_s: float) -> bool:
        """Resolves told more than KEEP_TOLD_S after their end leave the book. Whether any did."""
        cutoff = iso((now_s - KEEP_TOLD_S) * 1000)
        gone = [k for k, a in self.alerts.items() if a.status == RESOLVED and a.told and a.ends_at < cutoff]
        for k in gone:
            del self.alerts[k]
        return bool(gone)

    def due(self, now_s: float, every_s: float, firing_too: bool) -> list[Alert]:
        """Alerts to put in the outbox again: not yet told (at most every `every_s`); with `firing_too`,
        every firing one as well (Alertmanager forgets an alert that is not re-sent)."""
        out = [a for a in self.alerts.values()
               if (firing_too and a.status == FIRING) or (not a.told and now_s - a.put_s >= every_s)]
        for a in out:
            a.put_s = now_s
        return out
