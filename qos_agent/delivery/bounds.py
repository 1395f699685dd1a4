"""What keeps a sink's state on disk bounded: the spool (max_spool_mb), dead_letter rows and damaged files.

- spool rows past max_spool_mb: the oldest not being sent are dropped (counted dropped[spool_full]);
- dead_letter rows: kept up to DEAD_LETTER_SHARE of max_spool_mb, the oldest removed first (counted
  in `Store.dead_pruned` and logged: they were already counted as dead-lettered);
- moved-aside damaged files (`<name>.db.corrupt-<ms>`, with their -wal/-shm): at most KEEP_ASIDE per
  sink and ASIDE_SHARE of max_spool_mb, the oldest removed first; the newest is always kept, whatever
  its size, for forensics (counted in `Store.aside_pruned` and logged).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

DEAD_LETTER_SHARE = 0.1  # dead_letter rows kept up to this share of max_spool_mb
KEEP_ASIDE = 3  # damaged files kept per sink
ASIDE_SHARE = 0.25  # ...and their bytes at most this share of max_spool_mb


def cut_oldest(db: sqlite3.Connection, table: str, size_sql: str, after: int, need: int) -> tuple[int, int]:
    """Delete the oldest rows of table with id > after until `need` bytes (size_sql per row) are freed;
    (rows deleted, bytes freed)."""
    cut, freed, n, last = after, 0, 0, after
    while freed < need:
        rows = db.execute(f"SELECT id, {size_sql} FROM {table} WHERE id > ? ORDER BY id LIMIT 2000",
                          (last,)).fetchall()
        if not rows:
            break
        for rid, size in rows:
            cut, freed, n = rid, freed + size, n + 1
            if freed >= need:
                break
        last = rows[-1][0]
    if n:
        db.execute(f"DELETE FROM {table} WHERE id > ? AND id <= ?", (after, cut))
    return n, freed


def prune_aside(path: Path, max_bytes: int) -> list[Path]:
    """Remove the oldest moved-aside copies of `path` past KEEP_ASIDE files or ASIDE_SHARE * max_bytes."""
    groups: dict[Path, list[Path]] = {}
    for f in path.parent.glob(f"{path.name}.corrupt-*"):
        base = Path(str(f).removesuffix("-wal").removesuffix("-shm"))
        groups.setdefault(base, []).append(f)

    def size(files: list[Path]) -> int:
        total = 0
        for f in files:
            with contextlib.suppress(OSError):
                total += f.stat().st_size
        return total

    def age(base: Path) -> tuple[int, str]:
        tail = base.name.rsplit("-", 1)[-1]
        return (int(tail) if tail.isdigit() else 0, base.name)

    newest_first = sorted(groups, key=age, reverse=True)
    budget, kept, removed = int(max_bytes * ASIDE_SHARE), 0, list[Path]()
    for i, base in enumerate(newest_first):  # the newest is always kept; past the bounds, all older go
        n = size(groups[base])
        if not removed and (i == 0 or (i < KEEP_ASIDE and kept + n <= budget)):
            kept += n
            continue
        for f in groups[base]:
            with contextlib.suppress(OSError):
                f.unlink()
        removed.append(base)
    return removed
