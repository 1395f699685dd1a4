"""The embedded store's size bound, `max_mb`: past it the oldest points go first.

Prometheus' `--storage.tsdb.retention.size` is the model: retention by age and by size side by side,
whichever is reached first. Measured here, 50 one-step journeys a second write about 4 GB a day, so
the default 720 h retention alone would let the store reach about 120 GB; `max_mb` (1024 by default)
keeps it to what the disk was sized for. The used size is the pages SQLite holds for points and
indexes (free pages are not counted: new rows reuse them, so the file stays near `max_mb`). The size
is measured before a batch is written, about every `CHECK_SHARE` of `max_mb`; a prune makes room for
the batch and brings the store down to `TARGET_SHARE`, so one runs every ten percent written or so.
"""

from __future__ import annotations

import math
import sqlite3

TARGET_SHARE = 0.9  # a prune brings the store down to this share of max_mb
CHECK_SHARE = 0.01  # the size is measured each time about this share of max_mb has been written
MIN_CHECK_ROWS = 100
GUESS_ROW_BYTES = 512  # a point's bytes before the store has any to measure


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the pages in use (points and their indexes), free pages left out."""
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return (pages - free) * page_size


def bytes_per_row(conn: sqlite3.Connection, used: int) -> int:
    """About how many bytes a point takes, indexes included (ids are dense: the oldest leave first)."""
    lo, hi = conn.execute("SELECT min(id), max(id) FROM points").fetchone()
    return max(1, used // (hi - lo + 1)) if lo is not None else 0


def check_every(max_bytes: int, per_row: int) -> int:
    """Rows to write between two measurements: about CHECK_SHARE of max_mb."""
    return max(MIN_CHECK_ROWS, int(max_bytes * CHECK_SHARE / max(per_row, 1)))


def prune_oldest(conn: sqlite3.Connection, max_bytes: int, incoming_rows: int) -> tuple[int, int]:
    """Before `incoming_rows` are written: if they would take the store over max_bytes, delete the oldest
    points until it and they fit TARGET_SHARE of it. (rows deleted, bytes per row now)."""
    used = used_bytes(conn)
    per_row = bytes_per_row(conn, used) or GUESS_ROW_BYTES
    deleted, target = 0, int(max_bytes * TARGET_SHARE) - incoming_rows * per_row
    if used + incoming_rows * per_row <= max_bytes:
        return 0, per_row
    for _ in range(8):  # each pass aims at the target; a few cover a wrong estimate
        if used <= target:
            break
        n = math.ceil((used - target) / per_row)
        cutoff = conn.execute("SELECT time_ms FROM points ORDER BY time_ms LIMIT 1 OFFSET ?", (n - 1,)).fetchone()
        if cutoff is None:  # fewer rows than that: the estimate was off, take the oldest half
            cutoff = conn.execute("SELECT time_ms FROM points ORDER BY time_ms LIMIT 1 OFFSET "
                                  "(SELECT count(*) / 2 FROM points)").fetchone()
            if cutoff is None:
                break
        gone = conn.execute("DELETE FROM points WHERE time_ms <= ?", (cutoff[0],)).rowcount
        deleted += gone
        used = used_bytes(conn)
        if not gone or not used:
            break
    return deleted, per_row
