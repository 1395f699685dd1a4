"""One network sink's spool file, SQLite, touched only by its store's worker thread.

`state_dir/spool/<sink-name>.db`, WAL, one row per record (`spool(id INTEGER PRIMARY KEY, line
TEXT)`, the name and layout of the previous versions' spool, so a file they left replays), plus a
`dead_letter` table. Why SQLite:
- a committed transaction survives `kill -9` (WAL, synchronous=NORMAL: the commit is in the WAL
  before `put` returns; only an OS crash can lose the last commits), and a torn tail is SQLite's
  problem, already solved;
- the read cursor is "the lowest ids" (new rows always get a higher id than every row left), so
  settling a batch, dropping the oldest and replaying after a restart are one statement each;
- one row per record keeps the size bound, dead-lettering and counting exact;
- a damaged file is detected (at open, or when a query meets a bad page), moved aside
  (`<name>.db.corrupt-<unix-ms>`), and every readable row salvaged into a fresh file
  (delivery/salvage.py); the rest counted as dropped[corrupt];
- a failed write (disk full, read-only) drops the batch being stored, counted under its cause
  (dropped[disk_full], [read_only], [disk_error]); a failed COMMIT/ROLLBACK never hides the first
  error and a connection left mid-transaction is reopened, so storing resumes by itself.
Dead letters and damaged files are bounded (delivery/bounds.py). Every count is the ledger's,
changed here in the same step as the rows (delivery/ledger.py).
"""

from __future__ import annotations

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
from qos_agent.delivery.ledger import Ledger
from qos_agent.delivery.salvage import Salvaged, salvage
from qos_agent.errors import SetupError

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


@dataclass(frozen=True, slots=True)
class Batch:
    """Records out for sending (the store's one lease): their row ids, ascending, and lines."""

    ids: list[int]
    records: list[str]


def runs(ids: Sequence[int], positions: Sequence[int]) -> list[tuple[int, int]]:
    """(first id, last id) of each run of consecutive positions in a batch: what one DELETE each removes
    (no row outside the batch lies between the ids of one run: new rows get higher ids)."""
    out: list[tuple[int, int]] = []
    last = -2
    for p in sorted(positions):
        if out and p == last + 1:
            out[-1] = (out[-1][0], ids[p])
        else:
            out.append((ids[p], ids[p]))
        last = p
    return out


class SpoolFile:
    """The SQLite side of a store (see the module docstring). Worker thread only."""

    def __init__(self, path: Path, name: str, max_bytes: int, ledger: Ledger,
                 redact: Callable[[str], str]) -> None:
        self.path = path
        self.name = name
        self.max_bytes = max_bytes
        self.ledger = ledger
        self.redact = redact
        self.bytes = 0  # rows waiting, with ROW_OVERHEAD each (a gauge read by the loop)
        self.dead_bytes = 0  # dead_letter rows (bounded by DEAD_LETTER_SHARE of max_spool_mb)
        self.dead_pruned = 0  # dead_letter rows removed to stay in bounds (oldest first)
        self.aside_pruned = 0  # damaged files removed to stay in bounds (oldest first)
        self.leased = 0  # rows out for sending (the one lease)...
        self.leased_hi = 0  # ...all with id <= this: never dropped from under the sender
        self._db: sqlite3.Connection | None = None
        self._logged: set[str] = set()

    def open(self) -> None:
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
        self.ledger.found(int(n))
        self.bytes = int(size) + int(n) * ROW_OVERHEAD
        self.dead_bytes = int(dead)

    def _recover(self, err: BaseException) -> None:
        """A damaged file is moved aside (kept for forensics, bounded), every readable row salvaged into
        a fresh file (delivery/salvage.py) and the rest counted as dropped[corrupt]; never a crash."""
        self.close()
        believed = self.ledger.spooled  # 0 at open; mid-run, what the ledger says was waiting
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
        self.ledger.lost("corrupt", lost)
        log.error("spool %s: %s was damaged (%s); salvaged %d of %s%d records into a fresh file, %d lost "
                  "(counted as dropped[corrupt]); the damaged file is kept as %s", self.name, self.path, err,
                  got.copied, "" if got.exact or held == believed else "about ", held, lost, aside.name)
        self.ledger.problem(f"damaged spool file: {err}; salvaged {got.copied}, lost {lost}")
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
                    self.close()
                raise  # disk full, read-only, locked: not corruption
            self._recover(e)
            assert self._db is not None
            return fn(self._db)

    def _txn(self, db: sqlite3.Connection, body: Callable[[], T]) -> T:
        """One transaction. A failed statement or COMMIT (disk full) may already have ended it: the
        rollback is tried only while one is open, its own failure never hides the first error, and a
        connection left in a transaction is dropped (reopened on the next call)."""
        db.execute("BEGIN")
        try:
            out = body()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if db.in_transaction:
                self.close()
            raise
        return out

    def insert(self, makers: list[Callable[[], list[str]]], points: int) -> int:
        """Store what the makers make (records committed, or 0); a failed write loses `points`, counted."""
        try:
            records = [r for make in makers for r in make()]
        except Exception as e:  # an encoding bug in a sink: its points are lost, never the loop
            return self._lost("encode_failed", points, e)
        if not records:
            return 0
        try:
            self._guard(lambda db: self._txn(db, lambda: db.executemany(
                "INSERT INTO spool(line) VALUES (?)", [(r,) for r in records])))
        except (sqlite3.Error, OSError) as e:
            return self._lost(write_cause(e), points, e)
        self.bytes += sum(map(len, records)) + ROW_OVERHEAD * len(records)
        try:  # the records are committed: a failed trim must not count them as lost
            dropped = self._drop_oldest() if self.bytes > self.max_bytes else 0
        except sqlite3.Error as e:
            self._log_once("trim", logging.WARNING, "spool %s: cannot trim to max_spool_mb now: %s", self.name, e)
            dropped = 0
        self.ledger.stored(len(records), dropped)
        if any(k.startswith("write:") for k in self._logged):
            log.info("spool %s: storing records again", self.name)
            self._logged = {k for k in self._logged if not k.startswith("write:")}
        return len(records)

    def _lost(self, cause: str, points: int, e: BaseException) -> int:
        self.ledger.lost(cause, points)
        self.ledger.problem(self.redact(f"spool write failed ({cause}): {e}"))
        self._log_once(f"write:{cause}", logging.ERROR, "spool %s: cannot store records in %s: %s (they are lost, "
                       "counted as dropped[%s]; check disk space and permissions — storing resumes by itself)",
                       self.name, self.path, e, cause)
        return 0

    def _drop_oldest(self) -> int:
        n, freed = self._guard(lambda db: cut_oldest(db, "spool", f"length(line) + {ROW_OVERHEAD}",
                                                     self.leased_hi, self.bytes - self.max_bytes))
        if n:
            self.bytes -= freed
            self._log_once("drop", logging.WARNING, "spool %s: over max_spool_mb (%d MB), dropping the oldest "
                           "records (counted as 'dropped'; raise max_spool_mb or fix the sink)", self.name,
                           self.max_bytes >> 20)
        return n

    def read(self, limit: int) -> Batch:
        """Lease the oldest records, at most limit (one lease at a time: a new read replaces it)."""
        rows = self._guard(lambda db: db.execute(
            "SELECT id, line FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall())
        self.leased, self.leased_hi = len(rows), int(rows[-1][0]) if rows else 0
        return Batch([int(r[0]) for r in rows], [r[1] for r in rows])

    def settle(self, batch: Batch, accepted: Sequence[int], dead: Sequence[tuple[int, str]]) -> None:
        """The lease is over: the records at positions `accepted` were taken, those in `dead` refused for
        good (to dead_letter with their message); the rest stay, to be read again."""
        now_ms = int(time.time() * 1000)

        def body(db: sqlite3.Connection) -> tuple[int, int]:
            if dead:
                db.executemany("INSERT INTO dead_letter(at_ms, line, message) VALUES (?, ?, ?)",
                               [(now_ms, batch.records[p], msg) for p, msg in dead])
            gone = [0, 0]
            for k, positions in enumerate((accepted, [p for p, _ in dead])):
                for lo, hi in runs(batch.ids, positions):
                    gone[k] += db.execute("DELETE FROM spool WHERE id >= ? AND id <= ?", (lo, hi)).rowcount
            return gone[0], gone[1]

        taken, refused = self._guard(lambda db: self._txn(db, lambda: body(db)))
        self.ledger.settled(taken, refused)
        self.leased = self.leased_hi = 0
        out = [*accepted, *(p for p, _ in dead)]
        self.bytes = max(0, self.bytes - sum(len(batch.records[p]) + ROW_OVERHEAD for p in out))
        self.dead_bytes += sum(len(batch.records[p]) + len(m) for p, m in dead)
        if self.dead_bytes > self.max_bytes * DEAD_LETTER_SHARE:
            try:
                self._prune_dead()
            except sqlite3.Error as e:
                self._log_once("prune", logging.WARNING, "spool %s: cannot prune dead_letter now: %s", self.name, e)

    def release(self) -> None:
        """The lease ends with nothing settled (closing while the sink still fails): the rows stay."""
        self.leased = self.leased_hi = 0

    def _prune_dead(self) -> None:
        """Remove the oldest dead_letter rows until they fit DEAD_LETTER_SHARE of max_spool_mb."""
        need = self.dead_bytes - int(self.max_bytes * DEAD_LETTER_SHARE)
        n, freed = self._guard(lambda db: cut_oldest(db, "dead_letter", "length(line) + length(message)", 0, need))
        self.dead_bytes -= freed
        self.dead_pruned += n
        if n:
            self._log_once("dead-prune", logging.WARNING, "spool %s: dead_letter over %d%% of max_spool_mb: removed "
                           "the oldest rows (%d so far)", self.name, int(DEAD_LETTER_SHARE * 100), self.dead_pruned)

    def recount(self) -> int:
        """Trust the table over the ledger (after a recovered file)."""
        n = int(self._guard(lambda db: db.execute("SELECT count(*) FROM spool").fetchone()[0]))
        self.ledger.found(n)
        return n

    def dead_letters(self) -> list[tuple[str, str]]:
        return self._guard(lambda db: [
            (r[0], r[1]) for r in db.execute("SELECT line, message FROM dead_letter ORDER BY id")])

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _log_once(self, key: str, level: int, msg: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args)
