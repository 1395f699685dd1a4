"""The durable store in front of every network sink: what was measured survives outages and kill -9.

One SQLite file per sink, `state_dir/spool/<sink-name>.db`, in WAL mode, one row per record
(`spool(id INTEGER PRIMARY KEY, line TEXT)`, the name and layout of the previous versions' spool, so
a file they left replays), plus a `dead_letter` table. Ids only grow while rows remain (rows leave
from the low end only), so id order is arrival order without the cost of AUTOINCREMENT. Why SQLite:
- a committed transaction survives `kill -9` (WAL, synchronous=NORMAL: the commit is in the WAL
  before `put` returns; only an OS crash can lose the last commits), and a torn tail is SQLite's
  problem, already solved;
- the read cursor is simply "the lowest ids": ack is `DELETE WHERE id BETWEEN lo AND hi`, dropping
  the oldest is the same, replay after a restart is opening the file again;
- one row per record keeps the size bound, dead-lettering and counting exact;
- a corrupt file is detected and moved aside (`<name>.db.corrupt-<unix-ts>`): a fresh store starts.

All SQLite I/O runs on one worker thread per store: the event loop never blocks, the connection is
only touched from the thread that made it, and operations run in call order. Concurrent puts are
group-committed: whatever queued while the worker was busy goes in one transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from qos_agent.language.secrets import Redactor
from qos_agent.plugins.protocols import SinkStats

log = logging.getLogger(__name__)
T = TypeVar("T")

ROW_OVERHEAD = 24  # bytes counted per row on top of the record (rowid, record header, page slack)


def spool_path(state_dir: Path, name: str) -> Path:
    """Where a sink's store lives (kept from the previous versions: their files replay)."""
    return state_dir / "spool" / f"{name}.db"


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read for sending: rows lo..hi (inclusive), oldest first."""

    lo: int
    hi: int
    records: list[str]


class Store:
    """A durable queue of records (see the module docstring). Counts into `stats` (spooled, dropped)."""

    def __init__(self, path: Path, *, name: str = "", max_spool_mb: float = 512.0,
                 stats: SinkStats | None = None, redact: Redactor | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.max_bytes = int(max_spool_mb * 1024 * 1024)
        self.stats = stats if stats is not None else SinkStats()
        self.redact = redact or Redactor()
        self.on_stored: Callable[[int], None] | None = None  # told how many records each commit added
        self._bytes = 0
        self._inflight_hi = 0  # rows with id <= this are being sent: never dropped under them
        self._db: sqlite3.Connection | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-{self.name}")
        self._pending: list[tuple[Callable[[], list[str]], int, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._logged: set[str] = set()
        self._pool.submit(self._open).result()

    @property
    def depth(self) -> int:
        """Records waiting (including a batch being sent)."""
        return self.stats.spooled

    @property
    def used_bytes(self) -> int:
        return self._bytes

    @property
    def fill(self) -> float:
        """Used share of max_spool_mb, 0..1."""
        return min(1.0, self._bytes / self.max_bytes) if self.max_bytes > 0 else 0.0

    # ------------------------------------------------------------------ worker-thread side

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connect()
        except sqlite3.DatabaseError as e:
            self._recover(e)

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS spool(id INTEGER PRIMARY KEY, line TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS dead_letter(id INTEGER PRIMARY KEY AUTOINCREMENT, "
                       "at_ms INTEGER NOT NULL, line TEXT NOT NULL, message TEXT NOT NULL)")
            n, size = db.execute("SELECT count(*), coalesce(sum(length(line)), 0) FROM spool").fetchone()
        except BaseException:
            db.close()
            raise
        self._db = db
        self.stats.spooled = int(n)
        self._bytes = int(size) + int(n) * ROW_OVERHEAD

    def _recover(self, err: BaseException) -> None:
        """A corrupt file is moved aside (kept for forensics) and a fresh one started; never a crash."""
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, Path(f"{aside}{suffix}"))
        lost = self.stats.spooled
        log.error("spool %s: %s is unreadable (%s); moved it to %s and started a fresh spool%s", self.name,
                  self.path, err, aside.name, f" ({lost} waiting records are in the old file)" if lost else "")
        self.stats.last_error = f"corrupt spool file moved aside: {err}"
        self._inflight_hi = 0
        self._connect()

    def _guard(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn on the connection; a corrupt file mid-run is recovered from and fn retried once."""
        if self._db is None:
            self._open()
        assert self._db is not None
        try:
            return fn(self._db)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):
                raise  # disk full, locked: not corruption
            self._recover(e)
            assert self._db is not None
            return fn(self._db)

    @staticmethod
    def _txn(db: sqlite3.Connection, body: Callable[[], object]) -> None:
        db.execute("BEGIN")
        try:
            body()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _insert(self, makers: list[Callable[[], list[str]]]) -> tuple[int, int]:
        """(records stored, oldest records dropped over the cap)."""
        records = [r for make in makers for r in make()]
        if not records:
            return 0, 0
        self._guard(lambda db: self._txn(db, lambda: db.executemany(
            "INSERT INTO spool(line) VALUES (?)", [(r,) for r in records])))
        self._bytes += sum(map(len, records)) + ROW_OVERHEAD * len(records)
        dropped = self._drop_oldest() if self._bytes > self.max_bytes else 0
        return len(records), dropped

    def _drop_oldest(self) -> int:
        def drop(db: sqlite3.Connection) -> tuple[int, int]:
            cut, freed, n, last = self._inflight_hi, 0, 0, self._inflight_hi
            need = self._bytes - self.max_bytes
            while freed < need:
                rows = db.execute("SELECT id, length(line) FROM spool WHERE id > ? ORDER BY id LIMIT 2000",
                                  (last,)).fetchall()
                if not rows:
                    break
                for rid, size in rows:
                    cut, freed, n = rid, freed + size + ROW_OVERHEAD, n + 1
                    if freed >= need:
                        break
                last = rows[-1][0]
            if n:
                db.execute("DELETE FROM spool WHERE id > ? AND id <= ?", (self._inflight_hi, cut))
            return n, freed

        n, freed = self._guard(drop)
        if n:
            self._bytes -= freed
            self._log_once("drop", logging.WARNING, "spool %s: over max_spool_mb (%d MB), dropping the oldest "
                           "records (counted as 'dropped'; raise max_spool_mb or fix the sink)", self.name,
                           self.max_bytes >> 20)
        return n

    def _read(self, limit: int) -> Batch:
        rows = self._guard(lambda db: db.execute(
            "SELECT id, line FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall())
        if not rows:
            return Batch(0, 0, [])
        self._inflight_hi = int(rows[-1][0])
        return Batch(int(rows[0][0]), self._inflight_hi, [r[1] for r in rows])

    def _ack(self, batch: Batch, dead: list[tuple[str, str]]) -> None:
        now_ms = int(time.time() * 1000)

        def body(db: sqlite3.Connection) -> None:
            if dead:
                db.executemany("INSERT INTO dead_letter(at_ms, line, message) VALUES (?, ?, ?)",
                               [(now_ms, r, msg) for r, msg in dead])
            db.execute("DELETE FROM spool WHERE id >= ? AND id <= ?", (batch.lo, batch.hi))

        self._guard(lambda db: self._txn(db, lambda: body(db)))
        sent = batch.records
        self._bytes = max(0, self._bytes - sum(map(len, sent)) - ROW_OVERHEAD * len(sent))
        self._inflight_hi = 0

    def _count(self) -> int:
        return int(self._guard(lambda db: db.execute("SELECT count(*) FROM spool").fetchone()[0]))

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _dead_letters(self) -> list[tuple[str, str]]:
        return self._guard(lambda db: [
            (r[0], r[1]) for r in db.execute("SELECT line, message FROM dead_letter ORDER BY id")])

    # ------------------------------------------------------------------ event-loop side

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def put(self, records: Sequence[str]) -> None:
        """Store records durably: they are committed to disk when this returns."""
        if records:
            items = list(records)
            await self.put_with(lambda: items, len(items))

    async def put_with(self, make: Callable[[], list[str]], points: int = 1) -> None:
        """Like put, with the records made on the worker thread (encoding stays off the event loop);
        `points`: how many points they stand for (counted as dropped if the disk write fails)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((make, points, fut))
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_loop())
        await asyncio.shield(fut)

    async def _commit_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            makers = [make for make, _, _ in batch]
            try:
                n, dropped = await self._run(lambda: self._insert(makers))  # noqa: B023 (awaited at once)
                # Counters change on the loop thread only, so a reader on the loop sees them agree.
                self.stats.spooled += n - dropped
                self.stats.drop("spool_full", dropped)
            except Exception as e:  # a failed disk write: counted and logged, never raised into a probe run
                self.stats.last_error = self.redact(f"spool write failed: {e}")
                self._log_once(f"write:{type(e).__name__}", logging.ERROR, "spool %s: cannot store records in "
                               "%s: %s (they are lost; check disk space and permissions)", self.name, self.path, e)
                self.stats.drop("disk", sum(points for _, points, _ in batch))
                n = 0
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            if n and self.on_stored is not None:
                self.on_stored(n)

    async def flush(self, timeout_s: float) -> None:
        """Wait (up to timeout_s) for puts under way to be committed."""
        if self._committer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._committer), timeout_s)

    async def read(self, limit: int) -> Batch:
        """The oldest records, at most limit; they stay stored until acked."""
        return await self._run(lambda: self._read(limit))

    async def ack(self, batch: Batch, dead: list[tuple[str, str]]) -> None:
        """The batch is done: delivered, except `dead` (record, message) which go to dead_letter.

        `spooled` falls and `delivered` rises in the same step of the loop: a reader never sees a
        record in neither (nor in both). A batch re-sent after a sibling part failed counts once."""
        await self._run(lambda: self._ack(batch, dead))
        self.stats.spooled = max(0, self.stats.spooled - len(batch.records))  # max: a file recovered mid-send
        self.stats.delivered += len(batch.records) - len(dead)

    async def recount(self) -> int:
        """Trust the table over the counter (after a recovered file)."""
        self.stats.spooled = await self._run(self._count)
        return self.stats.spooled

    async def dead_letters(self) -> list[tuple[str, str]]:
        """(record, message) of every dead-lettered record, oldest first (for tests and inspection)."""
        return await self._run(self._dead_letters)

    async def close(self) -> None:
        await self._run(self._close_db)
        self._pool.shutdown(wait=False)

    def _log_once(self, key: str, level: int, msg: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args)
