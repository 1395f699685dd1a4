"""Which alerts a sink holds open, kept in a small JSON file so a restart neither forgets nor strands one.

Alertmanager forgets an alert that is not re-sent before its `endsAt`, and resolves it at once when it
is sent with an `endsAt` in the past. So the sink must know, after a `kill -9`, which alerts it had
opened: it re-sends them, and resolves those the restarted agent does not open again within a grace
period. The file (`state_dir/alerts/<sink>.json`) is rewritten whole on every change, atomically
(write a temp file, fsync, rename), so it is either the old or the new set, never half of one.

The set is touched from the delivery worker thread (`encode`) and from the event loop (the resend
timer), hence the lock. A held alert keeps the labels it was opened with: Alertmanager identifies an
alert by its labels, so a resolve with other labels would leave the first one firing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Held:
    """One open alert: what was sent when it opened, and until when a restarted agent may adopt it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    orphan_until: float | None = None  # unix seconds; set for alerts found in the file at start


class OpenAlerts:
    """The open-alert set of one sink, mirrored to its state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.held: dict[str, Held] = {}

    def load(self, grace_s: float) -> list[str]:
        """Read what a previous run held; each becomes an orphan until now + grace_s. Returns their keys."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            items = raw["alerts"] if isinstance(raw, dict) else {}
            held = {str(k): Held(labels=dict(v["labels"]), annotations=dict(v["annotations"]),
                                 starts_at=str(v["starts_at"])) for k, v in items.items()}
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.error("alert state %s is unreadable (%s); starting with no open alerts", self.path, e)
            return []
        until = time.time() + grace_s
        with self.lock:
            for key, h in held.items():
                h.orphan_until = until
                self.held.setdefault(key, h)
            return list(held)

    def save(self) -> None:
        """Atomically rewrite the file from the set (call with the lock held)."""
        data: dict[str, Any] = {"version": 1, "alerts": {
            k: {key: value for key, value in asdict(h).items() if key != "orphan_until"}
            for k, h in self.held.items()}}
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

    def expired_orphans(self, now: float) -> dict[str, Held]:
        """Remove and return the orphans whose grace has passed (the agent did not open them again)."""
        with self.lock:
            gone = {k: h for k, h in self.held.items() if h.orphan_until is not None and h.orphan_until <= now}
            for k in gone:
                del self.held[k]
            if gone:
                self.save()
            return gone

    def snapshot(self) -> dict[str, Held]:
        with self.lock:
            return dict(self.held)

    def current_start(self, key: str) -> str | None:
        """startsAt of the held alert with this key (None: not held)."""
        with self.lock:
            h = self.held.get(key)
            return None if h is None else h.starts_at
