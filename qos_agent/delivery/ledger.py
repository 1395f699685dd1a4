"""The durable buffer's own account: what it holds, what left it and how (Telegraf's buffer owns its counts).

One writer: the store's worker thread, the only place that knows what the spool file holds, changes
every number here in the same step as the rows (a commit adds to `spooled`; settling a batch moves
records from `spooled` to `delivered` or `dead_lettered`; a drop moves them to `dropped[cause]`).
Readers on the event loop (/metrics, /healthz, the `agent` point) take `snapshot()` under the same
lock, so they never see a record in two places or in none.
"""

from __future__ import annotations

import threading
import time

from qos_agent.plugins.sinks import SinkStats


class Ledger:
    """The counts of one durable buffer; every method is called by its store's worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spooled = 0
        self._delivered = 0
        self._dead = 0
        self._dropped: dict[str, int] = {}
        self._error = ""
        self._error_s = 0.0

    @property
    def spooled(self) -> int:
        return self._spooled

    def found(self, rows: int) -> None:
        """The rows the file holds, counted from the table (at open, after a salvage)."""
        with self._lock:
            self._spooled = rows

    def stored(self, n: int, dropped_oldest: int = 0) -> None:
        """n records committed; the oldest `dropped_oldest` removed to stay within max_spool_mb."""
        with self._lock:
            self._spooled += n - dropped_oldest
            self._drop("spool_full", dropped_oldest)

    def settled(self, accepted: int, dead: int) -> None:
        """Records out of the spool: accepted by the destination, or refused for good (dead letter)."""
        with self._lock:
            self._spooled = max(0, self._spooled - accepted - dead)
            self._delivered += accepted
            self._dead += dead

    def lost(self, cause: str, n: int, held: int = 0) -> None:
        """n records lost under cause; `held` of them were counted as spooled (a damaged file's rows)."""
        with self._lock:
            self._spooled = max(0, self._spooled - held)
            self._drop(cause, n)

    def problem(self, message: str) -> None:
        with self._lock:
            self._error, self._error_s = message, time.time()

    def _drop(self, cause: str, n: int) -> None:
        if n > 0:
            self._dropped[cause] = self._dropped.get(cause, 0) + n

    def snapshot(self) -> SinkStats:
        with self._lock:
            return SinkStats.dropping(dict(self._dropped), spooled=self._spooled, delivered=self._delivered,
                                      dead_lettered=self._dead, last_error=self._error, last_error_s=self._error_s)
