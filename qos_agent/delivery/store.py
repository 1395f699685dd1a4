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
- a damaged file is detected (at open, or when a query meets a bad page), moved aside
  (`<name>.db.corrupt-<unix-ms>`), and every readable row salvaged into a fresh file
  (delivery/salvage.py); the rest counted as dropped[corrupt];
- a failed write (disk full, read-only) drops the batch being stored, counted under its cause
  (dropped[disk_full], [read_only], [disk_error]); a failed COMMIT/ROLLBACK never hides the first error
  and a connection left mid-transaction is reopened, so storing resumes by itself when space returns.
Dead letters and damaged files are bounded (delivery/bounds.py).

All SQLite I/O runs on one worker thread per store: the event loop never blocks, the connection is
only touched from the thread that made it, and operations run in call order. Concurrent puts are
group-committed: whatever queued while the worker was busy goes in one transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from qos_agent.delivery.bounds import ASIDE_SHARE, DEAD_LETTER_SHARE, KEEP_ASIDE, cut_oldest, prune_aside
from qos_agent.delivery.salvage import Salvaged, salvage
from qos_agent.errors import SetupError
from qos_agent.language.secrets import Redactor
from qos_agent.plugins.sinks import SinkStats

log = logging.getLogger(__name__)
T = TypeVar("T")

ROW_OVERHEAD = 24  # bytes counted per row on top of the record (rowid, record header, page slack)


def write_cause(e: BaseException) -> str:
    """The cause a failed disk write is counted under: disk_full, read_only or disk_error."""
    code = getattr(e, "sqlite_errorcode", None)
    errno_ = getattr(e, "errno", None)
    if code == sqlite3.SQLITE_FULL or errno_ == errno.ENOSPC or "disk is full" in str(e):
        return "disk_full"
    if code == sqlite3.SQLITE_READONLY or errno_ in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "read_only"
    return "disk_error"


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
        self._dead_bytes = 0  # bytes of dead_letter rows (bounded by DEAD_LETTER_SHARE of max_spool_mb)
        self.dead_pruned = 0  # dead_letter rows removed to stay in bounds (oldest first)
        self.aside_pruned = 0  # damaged files removed to stay in bounds (oldest first)
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connect()
        except sqlite3.OperationalError as e:  # read-only, permissions, no space: the machine, not the file
            raise SetupError(f"spool {self.name}: cannot open {self.path}: {e} (agent.state_dir must be a "
                             "writable directory with free space)") from None
        except OSError as e:
            raise SetupError(f"spool {self.name}: cannot create {self.path.parent}: {e.strerror or e} "
                             "(agent.state_dir must be a writable directory)") from None
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
            self._measure(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _measure(self, db: sqlite3.Connection) -> None:
        """Counters from the tables (they scan every row: a damaged page shows here, at open)."""
        n, size = db.execute("SELECT count(*), coalesce(sum(length(line)), 0) FROM spool").fetchone()
        (dead,) = db.execute("SELECT coalesce(sum(length(line) + length(message)), 0) FROM dead_letter").fetchone()
        self.stats.spooled = int(n)
        self._bytes = int(size) + int(n) * ROW_OVERHEAD
        self._dead_bytes = int(dead)

    def _recover(self, err: BaseException) -> None:
        """A damaged file is moved aside (kept for forensics, bounded), every readable row salvaged into
        a fresh file (delivery/salvage.py) and the rest counted as dropped[corrupt]; never a crash."""
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        believed = self.stats.spooled  # 0 at open; mid-run, what the counter says was waiting
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time() * 1000)}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, Path(f"{aside}{suffix}"))
        self._connect()
        assert self._db is not None
        try:
            got = salvage(aside, self._db)
        except sqlite3.Error as e:  # the fresh file cannot take them (disk full): all counted lost
            log.error("spool %s: cannot salvage rows from %s: %s", self.name, aside.name, e)
            got = Salvaged(0, believed, False)
        self._measure(self._db)
        held = max(got.held, believed)
        lost = max(0, held - got.copied)
        self.stats.drop("corrupt", lost)
        log.error("spool %s: %s was damaged (%s); salvaged %d of %s%d records into a fresh file, %d lost "
                  "(counted as dropped[corrupt]); the damaged file is kept as %s", self.name, self.path, err,
                  got.copied, "" if got.exact or held == believed else "about ", held, lost, aside.name)
        self.stats.last_error = f"damaged spool file: {err}; salvaged {got.copied}, lost {lost}"
        for gone in prune_aside(self.path, self.max_bytes):
            self.aside_pruned += 1
            log.warning("spool %s: removed the old damaged file %s (at most %d kept, %d%% of max_spool_mb)",
                        self.name, gone.name, KEEP_ASIDE, int(ASIDE_SHARE * 100))

    def _guard(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn on the connection; a corrupt file mid-run is recovered from and fn retried once."""
        try:
            if self._db is None:  # dropped after a failed write: reconnect (the disk may be back)
                self._connect()
            assert self._db is not None
            return fn(self._db)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):
                if write_cause(e) == "disk_error":  # an unknown I/O state: start from a fresh connection
                    self._close_db()
                raise  # disk full, read-only, locked: not corruption
            self._recover(e)
            assert self._db is not None
            return fn(self._db)

    def _txn(self, db: sqlite3.Connection, body: Callable[[], object]) -> None:
        """One transaction. A failed statement or COMMIT (disk full) may already have ended it: the
        rollback is tried only while one is open, its own failure never hides the first error, and a
        connection left in a transaction is dropped (reopened on the next call)."""
        db.execute("BEGIN")
        try:
            body()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if db.in_transaction:
                self._close_db()
            raise

    def _insert(self, makers: list[Callable[[], list[str]]]) -> tuple[int, int]:
        """(records stored, oldest records dropped over the cap)."""
        records = [r for make in makers for r in make()]
        if not records:
            return 0, 0
        self._guard(lambda db: self._txn(db, lambda: db.executemany(
            "INSERT INTO spool(line) VALUES (?)", [(r,) for r in records])))
        self._bytes += sum(map(len, records)) + ROW_OVERHEAD * len(records)
        try:  # the records are committed: a failed trim must not count them as lost
            dropped = self._drop_oldest() if self._bytes > self.max_bytes else 0
        except sqlite3.Error as e:
            self._log_once("trim", logging.WARNING, "spool %s: cannot trim to max_spool_mb now: %s", self.name, e)
            dropped = 0
        return len(records), dropped

    def _drop_oldest(self) -> int:
        n, freed = self._guard(lambda db: cut_oldest(db, "spool", f"length(line) + {ROW_OVERHEAD}",
                                                     self._inflight_hi, self._bytes - self.max_bytes))
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
        self._dead_bytes += sum(len(r) + len(m) for r, m in dead)
        if self._dead_bytes > self.max_bytes * DEAD_LETTER_SHARE:
            try:
                self._prune_dead()
            except sqlite3.Error as e:
                self._log_once("prune", logging.WARNING, "spool %s: cannot prune dead_letter now: %s", self.name, e)
        sent = batch.records
        self._bytes = max(0, self._bytes - sum(map(len, sent)) - ROW_OVERHEAD * len(sent))
        self._inflight_hi = 0

    def _prune_dead(self) -> None:
        """Remove the oldest dead_letter rows until they fit DEAD_LETTER_SHARE of max_spool_mb."""
        need = self._dead_bytes - int(self.max_bytes * DEAD_LETTER_SHARE)
        n, freed = self._guard(lambda db: cut_oldest(db, "dead_letter", "length(line) + length(message)", 0, need))
        self._dead_bytes -= freed
        self.dead_pruned += n
        if n:
            self._log_once("dead-prune", logging.WARNING, "spool %s: dead_letter over %d%% of max_spool_mb: removed "
                           "the oldest rows (%d so far)", self.name, int(DEAD_LETTER_SHARE * 100), self.dead_pruned)

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
                cause = write_cause(e)
                self.stats.last_error = self.redact(f"spool write failed ({cause}): {e}")
                self._log_once(f"write:{cause}", logging.ERROR, "spool %s: cannot store records in %s: %s (they "
                               "are lost, counted as dropped[%s]; check disk space and permissions — storing "
                               "resumes by itself)", self.name, self.path, e, cause)
                self.stats.drop(cause, sum(points for _, points, _ in batch))
                n = 0
            else:
                if n and any(k.startswith("write:") for k in self._logged):
                    log.info("spool %s: storing records again", self.name)
                    self._logged = {k for k in self._logged if not k.startswith("write:")}
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
