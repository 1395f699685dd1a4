"""What is still readable in a damaged spool file, copied into the fresh one.

SQLite stops a scan at the first unreadable page ("database disk image is malformed"), which would
lose every row after 16 KB of garbage or a torn tail. Rows are read by id instead: a scan runs until
it fails, then the next readable id is found by probing `id >= s` (doubling s, then bisecting back to
the first s whose seek works) and the scan goes on from there. So only rows on damaged pages are
lost. Ids are kept, so order survives and a batch in flight when the damage was found is still
acked by its ids. The count of rows the file held comes from min(id)..max(id) (ids are contiguous
but for rare holes); when max(id) itself is unreadable (a truncated file) it is a lower bound.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1000
MAX_PROBES = 64


@dataclass(frozen=True, slots=True)
class Salvaged:
    copied: int  # spool rows copied into the fresh file
    held: int  # rows the damaged file held (a lower bound when `exact` is False)
    exact: bool
    dead_copied: int = 0

    @property
    def lost(self) -> int:
        return max(0, self.held - self.copied)


def _seek_ok(db: sqlite3.Connection, table: str, start: int) -> bool:
    try:
        db.execute(f"SELECT id FROM {table} WHERE id >= ? ORDER BY id LIMIT 1", (start,)).fetchall()
    except sqlite3.DatabaseError:
        return False
    return True


def _next_readable(db: sqlite3.Connection, table: str, bad: int) -> int | None:
    """The smallest id > bad from which a seek works (None: nothing readable after bad)."""
    step, ok = 1, None
    for _ in range(MAX_PROBES):
        if _seek_ok(db, table, bad + step):
            ok = bad + step
            break
        step *= 2
    if ok is None:
        return None
    lo = bad + step // 2 if step > 1 else bad  # lo fails (or is the failing id), ok works
    while ok - lo > 1:
        mid = (lo + ok) // 2
        if _seek_ok(db, table, mid):
            ok = mid
        else:
            lo = mid
    return ok


def _scan(db: sqlite3.Connection, table: str, cols: str, take: Callable[[list[tuple[object, ...]]], None],
          start: int) -> tuple[int, int]:
    """Feed every readable row (id first) to take, in chunks; (rows read, highest id read)."""
    n, last = 0, start - 1
    while True:
        rows: list[tuple[object, ...]] = []
        try:
            for row in db.execute(f"SELECT id, {cols} FROM {table} WHERE id > ? ORDER BY id", (last,)):
                rows.append(tuple(row))
                if len(rows) >= CHUNK:
                    take(rows)
                    n, last, rows = n + len(rows), int(rows[-1][0]), []  # type: ignore[call-overload]
            failed = False
        except sqlite3.DatabaseError:
            failed = True
        if rows:
            take(rows)
            n, last = n + len(rows), int(rows[-1][0])  # type: ignore[call-overload]
        if not failed:
            return n, last
        nxt = _next_readable(db, table, last + 1)
        if nxt is None:
            return n, last
        last = nxt - 1


def _one(db: sqlite3.Connection, sql: str) -> int | None:
    try:
        row = db.execute(sql).fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None or row[0] is None else int(row[0])


def salvage(src: Path, dst: sqlite3.Connection) -> Salvaged:
    """Copy every readable spool and dead_letter row of the damaged file src into dst (fresh, same schema)."""
    work = _readable_copy(src)
    try:
        return _salvage(work, src, dst)
    finally:
        if work != src:
            with contextlib.suppress(OSError):
                work.unlink()


def _readable_copy(src: Path) -> Path:
    """src, or a copy whose header's page count matches a truncated file's real length (SQLite refuses
    to read even the schema of a file shorter than its header says)."""
    try:
        with src.open("rb") as f:
            head = f.read(100)
        actual = src.stat().st_size
    except OSError:
        return src
    page = _page_size(head)
    if not page or int.from_bytes(head[28:32], "big") * page <= actual:
        return src
    work = src.with_name(src.name + ".salvage")
    try:
        shutil.copyfile(src, work)
        with work.open("r+b") as f:
            f.truncate(actual // page * page)
            f.seek(28)
            f.write((actual // page).to_bytes(4, "big"))
    except OSError:
        return src
    return work


def _page_size(head: bytes) -> int:
    """The page size a valid SQLite header gives (0: not a header SQLite trusts for its page count)."""
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0") or head[24:28] != head[92:96]:
        return 0
    page = int.from_bytes(head[16:18], "big")
    return 65536 if page == 1 else page


def _salvage(work: Path, src: Path, dst: sqlite3.Connection) -> Salvaged:
    try:
        old = sqlite3.connect(f"file:{work}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return Salvaged(0, 0, False)
    try:
        with contextlib.suppress(sqlite3.Error):
            old.execute("PRAGMA query_only=1")
        lo = _one(old, "SELECT min(id) FROM spool")
        hi = _one(old, "SELECT max(id) FROM spool")

        def put(rows: list[tuple[object, ...]]) -> None:
            dst.executemany("INSERT OR IGNORE INTO spool(id, line) VALUES (?, ?)", rows)

        def put_dead(rows: list[tuple[object, ...]]) -> None:
            dst.executemany("INSERT OR IGNORE INTO dead_letter(id, at_ms, line, message) VALUES (?, ?, ?, ?)", rows)

        dst.execute("BEGIN")
        try:
            copied, seen_hi = _scan(old, "spool", "line", put, lo if lo is not None else 1) \
                if lo is not None or hi is not None else (0, 0)
            dead, _ = _scan(old, "dead_letter", "at_ms, line, message", put_dead, 1)
            dst.execute("COMMIT")
        except BaseException:
            if dst.in_transaction:
                dst.execute("ROLLBACK")
            raise
    finally:
        old.close()
    if lo is not None and hi is not None:
        return Salvaged(copied, max(copied, hi - lo + 1), True, dead)
    seen = seen_hi - lo + 1 if lo is not None else copied
    return Salvaged(copied, max(copied, seen, copied + _missing_rows(src, copied)), False, dead)


def _missing_rows(src: Path, copied: int) -> int:
    """An estimate of the rows on pages a truncated file lost: the pages its header counts but the file
    lacks, times the rows per page of what was read (0 when the header cannot tell)."""
    try:
        with src.open("rb") as f:
            head = f.read(100)
        actual = src.stat().st_size
    except OSError:
        return 0
    page = _page_size(head)
    pages = int.from_bytes(head[28:32], "big") if page else 0
    if not page or pages * page <= actual:
        return 0
    have = actual // page
    return round((pages - have) * copied / max(1, have - 3))  # 3: schema and the two tables' roots
