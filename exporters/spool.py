"""The durable on-disk spool in front of every network exporter: nothing measured is lost.

Choice: one SQLite file per exporter, `state_dir/spool/<exporter-name>.db`, in WAL mode, one row per
line-protocol line (`spool(id INTEGER PRIMARY KEY, line TEXT)`), plus a `dead_letter` table. Ids only
grow while rows remain (rows leave from the low end only), so id order is arrival order without the
cost of AUTOINCREMENT. Why SQLite over hand-rolled append-only segments:
- a committed transaction survives `kill -9` (WAL with synchronous=NORMAL: the commit is in the WAL
  file before `write()` returns; only an OS crash/power cut can lose the last commits), and a torn
  tail is SQLite's problem, already solved, not ours;
- the delivery cursor is simply "the lowest ids": acking is `DELETE WHERE id <= hi`, dropping the
  oldest is the same, replay after a restart is opening the file again — no offsets/segment files;
- one row per point makes the size bound, dead-lettering and counting exact per point;
- the stdlib has it (no dependency), and a corrupt file is detected on open and moved aside
  (`<name>.db.corrupt-<unix-ts>`) so the agent starts fresh instead of crashing.
Each exporter owns its file, so each has its own cursor: one sink down never stalls another.

All SQLite I/O runs on one worker thread per spool (a single-thread executor): the event loop never
blocks, the connection is only ever touched from the thread that made it, operations run in call
order, and the shared default executor (used by DNS lookups) is never starved by disk work.
Concurrent `put`s are group-committed: whatever queued while the worker was busy goes in one
transaction, so the cost per result falls as the load rises.

Delivery: one task sends the oldest rows in order, in batches bounded by `batch_size` points or
`flush_interval` seconds since the oldest waiting point arrived, to `send(lines)`, which raises
`RetryableError` (connection, timeout, 5xx, 429/503 with `retry_after`, and auth/missing-database
problems that a human must fix — the points wait) or `PermanentError` (a 4xx that will never
succeed). A permanent error is bisected down to the offending lines, which go to `dead_letter`
(counted; the server's message logged once), while the rest are delivered. Retries back off
exponentially with full jitter, capped. Past `max_spool_mb` of stored lines, the oldest rows not
currently being sent are dropped and counted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from qos_agent.language.secrets import Redactor

log = logging.getLogger(__name__)
T = TypeVar("T")

Sender = Callable[[Sequence[str]], Awaitable[None]]
ROW_OVERHEAD = 24  # bytes counted per row on top of the line (rowid, record header, page slack)
BISECT_BUDGET = 64  # sends spent isolating bad lines in one batch before dead-lettering whole chunks


class RetryableError(Exception):
    """The batch may succeed later: keep it and retry. `fix` names what a human must do, if anything."""

    def __init__(self, message: str, retry_after: float | None = None, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.fix = fix


class _GiveUp(Exception):
    """Closing and the sink still fails: stop trying, the points stay on disk for the next start."""


class PermanentError(Exception):
    """The server will never accept these lines as they are (e.g. a field-type conflict)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class SpoolStats:
    """What the agent's `agent` self-metrics read. Counters are since this process started."""

    depth: int = 0  # points waiting on disk (including the batch being sent)
    exported: int = 0  # points the sink accepted
    export_errors: int = 0  # failed send attempts
    dropped: int = 0  # points dropped by the size bound (or a failed disk write)
    dead_letter: int = 0  # points the sink refused for good
    last_error: str = ""


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0.0, min(cap, base * (2.0 ** min(attempt, 30))))


class Spool:
    """A durable queue of line-protocol lines with its own delivery task (see the module docstring)."""

    def __init__(self, path: Path, *, name: str = "", batch_size: int = 5000, flush_interval: float = 1.0,
                 max_spool_mb: float = 512.0, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 parallel: int = 2, redact: Redactor | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.max_bytes = int(max_spool_mb * 1024 * 1024)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.parallel = max(1, parallel)  # requests one batch is split into, sent concurrently
        self.redact = redact or Redactor()
        self.stats = SpoolStats()
        self._bytes = 0
        self._inflight_hi = 0  # rows with id <= this are being sent: never dropped under them
        self._oldest_at = 0.0  # monotonic time the oldest unread point arrived (0: due now)
        self._inflight_n = 0  # points in the batch being sent
        self._db: sqlite3.Connection | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spool-{self.name}")
        self._pending: list[tuple[Callable[[], list[str]], asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._failing = 0  # consecutive failed attempts
        self._logged: set[str] = set()
        self._pool.submit(self._open).result()

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
        self.stats.depth = int(n)
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
        lost = self.stats.depth
        log.error("spool %s: %s is unreadable (%s); moved it to %s and started a fresh spool%s", self.name,
                  self.path, err, aside.name, f" ({lost} waiting points are in the old file)" if lost else "")
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

    def _insert(self, makers: list[Callable[[], list[str]]]) -> int:
        lines = [line for make in makers for line in make()]
        if not lines:
            return 0

        def txn(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            try:
                db.executemany("INSERT INTO spool(line) VALUES (?)", [(line,) for line in lines])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        self._guard(txn)
        self.stats.depth += len(lines)
        self._bytes += sum(map(len, lines)) + ROW_OVERHEAD * len(lines)
        if self._bytes > self.max_bytes:
            self._drop_oldest()
        return len(lines)

    def _drop_oldest(self) -> None:
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
            self.stats.depth -= n
            self.stats.dropped += n
            self._bytes -= freed
            self._log_once(f"drop:{self.name}", logging.WARNING,
                           "spool %s: over max_spool_mb (%d MB), dropping the oldest points (counted as "
                           "'dropped'; raise max_spool_mb or fix the sink)", self.name, self.max_bytes >> 20)

    def _read(self, limit: int) -> tuple[int, int, list[str]]:
        rows = self._guard(lambda db: db.execute(
            "SELECT id, line FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall())
        if not rows:
            return 0, 0, []
        self._inflight_hi = int(rows[-1][0])
        return int(rows[0][0]), self._inflight_hi, [r[1] for r in rows]

    def _ack(self, lo: int, hi: int, sent: Sequence[str], dead: list[tuple[str, str]]) -> None:
        now_ms = int(time.time() * 1000)

        def txn(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            try:
                if dead:
                    db.executemany("INSERT INTO dead_letter(at_ms, line, message) VALUES (?, ?, ?)",
                                   [(now_ms, line, msg) for line, msg in dead])
                db.execute("DELETE FROM spool WHERE id >= ? AND id <= ?", (lo, hi))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        self._guard(txn)
        self.stats.depth = max(0, self.stats.depth - len(sent))  # max: a file recovered mid-send
        self._bytes = max(0, self._bytes - sum(map(len, sent)) - ROW_OVERHEAD * len(sent))
        self._inflight_hi = 0

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _dead_letters(self) -> list[tuple[str, str]]:
        return self._guard(lambda db: [
            (r[0], r[1]) for r in db.execute("SELECT line, message FROM dead_letter ORDER BY id")])

    # ------------------------------------------------------------------ event-loop side

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def dead_letters(self) -> list[tuple[str, str]]:
        """(line, message) of every dead-lettered point, oldest first (for tests and inspection)."""
        return await self._run(self._dead_letters)

    async def put(self, lines: Sequence[str]) -> None:
        """Store lines durably: they are committed to disk when this returns."""
        if lines:
            items = list(lines)
            await self.put_with(lambda: items)

    async def put_with(self, make_lines: Callable[[], list[str]]) -> None:
        """Like put, with the lines made on the worker thread (encoding stays off the event loop)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((make_lines, fut))
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_loop())
        await asyncio.shield(fut)

    async def _commit_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                n = await self._run(self._insert, [make for make, _ in batch])
            except Exception as e:  # a failed disk write: counted and logged, never raised into a probe run
                self.stats.last_error = self.redact(f"spool write failed: {e}")
                self._log_once(f"write:{type(e).__name__}", logging.ERROR, "spool %s: cannot store points in %s: "
                               "%s (they are lost; check disk space and permissions)", self.name, self.path, e)
                n = 0
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            if n:
                if self.stats.depth - self._inflight_n == n:
                    self._oldest_at = time.monotonic()  # the first unread point starts the batch's clock
                if self._wake is not None:
                    self._wake.set()

    def start(self, send: Sender) -> None:
        """Start delivering to send (needs a running loop); idempotent."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._deliver(send), name=f"spool-{self.name}")

    @property
    def started(self) -> bool:
        return self._task is not None

    async def _deliver(self, send: Sender) -> None:
        assert self._wake is not None
        while True:
            if self.stats.depth == 0:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._wait_for_batch()
            lo, hi, lines = await self._run(self._read, self.batch_size)
            if not lines:
                self.stats.depth = 0  # the counter drifted (a recovered file): trust the table
                continue
            self._inflight_n = len(lines)  # points left unread keep the clock of this batch (older)
            try:
                dead = await self._send_until_done(send, lines)
            except _GiveUp:
                return
            await self._run(self._ack, lo, hi, lines, dead)
            self._inflight_n = 0
            self.stats.exported += len(lines) - len(dead)
            self.stats.dead_letter += len(dead)

    async def _wait_for_batch(self) -> None:
        """Until a full batch waits, the oldest point is flush_interval old, or we are closing."""
        assert self._wake is not None
        while self.stats.depth < self.batch_size and not self._closing and self._oldest_at:  # 0: due now
            left = self._oldest_at + self.flush_interval - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    async def _send_until_done(self, send: Sender, lines: list[str]) -> list[tuple[str, str]]:
        while True:
            try:
                dead = await self._send_bisect(send, lines)
            except RetryableError as e:
                await self._failed(e.message, e.fix, e.retry_after)
                continue
            except Exception as e:  # a bug or an unclassified error in send: keep the points, retry
                await self._failed(f"{type(e).__name__}: {e}", "", None)
                continue
            if self._failing:
                log.info("spool %s: delivering again after %d failed attempts", self.name, self._failing)
                self._failing = 0
                self._logged = {k for k in self._logged if not k.startswith("retry:")}
            return dead

    async def _failed(self, message: str, fix: str, retry_after: float | None) -> None:
        message = self.redact(message)
        self.stats.export_errors += 1
        self.stats.last_error = message
        level = logging.ERROR if fix else logging.WARNING
        self._log_once(f"retry:{message}", level, "spool %s: delivery failed: %s%s; %d points wait on disk, "
                       "retrying", self.name, message, f" ({fix})" if fix else "", self.stats.depth)
        delay = min(retry_after, 300.0) if retry_after is not None else \
            backoff_delay(self._failing, self.backoff_base, self.backoff_cap)
        self._failing += 1
        if self._closing:
            raise _GiveUp
        assert self._wake is not None
        end = time.monotonic() + delay
        while not self._closing and (left := end - time.monotonic()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)  # close() wakes us for a last try

    async def _send_bisect(self, send: Sender, lines: list[str]) -> list[tuple[str, str]]:
        """Send lines; a permanent refusal is halved until the refused lines are found (dead, returned)."""
        budget = BISECT_BUDGET

        async def go(chunk: list[str], dead: list[tuple[str, str]]) -> None:
            nonlocal budget
            try:
                await send(chunk)
            except PermanentError as e:
                if len(chunk) == 1 or budget <= 0:
                    msg = self.redact(e.message)
                    self.stats.last_error = msg
                    self._log_once(f"dead:{msg}", logging.ERROR, "spool %s: the sink refused %d point(s) for "
                                   "good, moved to dead_letter in %s: %s", self.name, len(chunk), self.path, msg)
                    dead.extend((line, msg) for line in chunk)
                    return
                budget -= 2
                mid = len(chunk) // 2
                await go(chunk[:mid], dead)
                await go(chunk[mid:], dead)

        parts = 1 if len(lines) < 2 * self.parallel else self.parallel
        step = -(-len(lines) // parts)
        deads: list[list[tuple[str, str]]] = [[] for _ in range(parts)]
        if parts == 1:
            await go(lines, deads[0])
        else:
            try:  # the parts go at once (the server uses its cores); the batch counts when all are in
                async with asyncio.TaskGroup() as tg:
                    for k in range(parts):
                        tg.create_task(go(lines[k * step:(k + 1) * step], deads[k]))
            except BaseExceptionGroup as group:  # the whole batch is retried: re-sent parts just overwrite
                waits = [e for e in group.exceptions if isinstance(e, RetryableError)]
                raise max(waits, key=lambda e: e.retry_after or 0.0) if waits else group.exceptions[0] from None
        return [d for part in deads for d in part]

    def _log_once(self, key: str, level: int, msg: str, *args: Any) -> None:
        if key in self._logged:
            return
        if len(self._logged) > 256:
            self._logged.clear()
        self._logged.add(key)
        log.log(level, msg, *args)

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within timeout, then stop; the rest stays on disk."""
        if self._committer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._committer), timeout)
        self._closing = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            if self.stats.depth:
                log.info("spool %s: %d points stay on disk in %s for the next start", self.name,
                         self.stats.depth, self.path)
        await self._run(self._close_db)
        self._pool.shutdown(wait=False)
