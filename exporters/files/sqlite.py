"""The embedded default store: every point in one SQLite file that `qos-agent report` reads.

Every measurement is kept generically (tags and fields as JSON), and `journey` points also fill
typed columns, so the report's per journey × region queries run on an index instead of parsing
JSON. SQLite work happens on one dedicated worker thread: writes are serialized, the connection
never changes thread, and the event loop never blocks on disk.

Space: the file uses `auto_vacuum = INCREMENTAL`, and after the hourly prune the freed pages are
given back (`PRAGMA incremental_vacuum`, then a WAL checkpoint that truncates the log), so the file
shrinks to what the retention keeps instead of growing forever. A store made before this (auto_vacuum
NONE) is converted once, with a VACUUM, when the agent opens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import orjson

from exporters.files.config import SQLITE_PATH, SqliteSpec
from exporters.files.sizebound import MIN_CHECK_ROWS, check_every, prune_oldest
from qos_agent.errors import SetupError
from qos_agent.model import Point
from qos_agent.plugins.sinks import Exporter, SinkStats

DEFAULT_PATH = SQLITE_PATH  # where `qos-agent report` looks without a file (qos_agent/reports/storepath.py)
SIZE_LOG_EVERY_S = 600.0  # the max_mb prune is logged at most this often
PRUNE_EVERY_S = float(os.environ.get("QOS_SQLITE_PRUNE_S", "3600"))  # benches shorten it
AUTO_VACUUM_INCREMENTAL = 2  # PRAGMA auto_vacuum: 0 none, 1 full, 2 incremental
log = logging.getLogger(__name__)
SCHEMA_VERSION = 1  # PRAGMA user_version; the one definition (qos_agent.reports reads it from here)

# Tags copied into typed columns for every measurement that has them.
TAG_COLUMNS = ("journey", "region", "agent", "kind")
# Fields copied into typed columns for `journey` points only.
JOURNEY_FIELD_COLUMNS = ("success", "outcome", "duration_ms", "attempt", "final", "flaky", "run_id",
                         "failed_step", "error", "error_message")
COLUMNS = ("measurement", "time_ms", "tags", "fields", *TAG_COLUMNS, *JOURNEY_FIELD_COLUMNS)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS points (
    id            INTEGER PRIMARY KEY,
    measurement   TEXT    NOT NULL,
    time_ms       INTEGER NOT NULL,
    tags          TEXT    NOT NULL,  -- JSON object
    fields        TEXT    NOT NULL,  -- JSON object
    journey       TEXT,
    region        TEXT,
    agent         TEXT,
    kind          TEXT,
    success       INTEGER,           -- the rest: journey points only
    outcome       TEXT,
    duration_ms   REAL,
    attempt       INTEGER,
    final         INTEGER,
    flaky         INTEGER,
    run_id        TEXT,
    failed_step   TEXT,
    error         TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS points_journey_runs ON points (journey, region, time_ms)
    WHERE measurement = 'journey';
CREATE INDEX IF NOT EXISTS points_measurement_time ON points (measurement, time_ms);
CREATE INDEX IF NOT EXISTS points_time ON points (time_ms);
PRAGMA user_version = {SCHEMA_VERSION};
"""

ROWS_PER_INSERT = 64  # rows per multi-row INSERT (64 × 19 values, far under SQLite's 32,766)
_ROW = f"({', '.join('?' * len(COLUMNS))})"


@lru_cache(maxsize=ROWS_PER_INSERT)
def _insert_rows(n: int) -> str:
    """An INSERT of `n` rows in one statement."""
    return f"INSERT INTO points ({', '.join(COLUMNS)}) VALUES {', '.join([_ROW] * n)}"


def _json(value: dict[str, Any]) -> str:
    """Compact UTF-8 JSON (orjson: a third of the stdlib encoder's CPU per row on this path; a
    non-finite float becomes null, which SQLite's JSON functions can read, unlike NaN)."""
    return orjson.dumps(value).decode()


def _sql_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


_SERIES: dict[tuple[tuple[str, str], ...], tuple[Any, ...]] = {}  # tags -> (tags JSON, tag columns)
_SERIES_MAX = 65_536
_NO_JOURNEY_FIELDS = (None,) * len(JOURNEY_FIELD_COLUMNS)


def _series(tags: tuple[tuple[str, str], ...]) -> tuple[Any, ...]:
    """A series' tag JSON and tag columns: the same few series repeat every run, so encode each once."""
    row = _SERIES.get(tags)
    if row is None:
        if len(_SERIES) >= _SERIES_MAX:
            _SERIES.clear()
        as_dict = dict(tags)
        row = _SERIES[tags] = (_json(as_dict), *(as_dict.get(name) for name in TAG_COLUMNS))
    return row


def row_of(p: Point) -> tuple[Any, ...]:
    """One point as the values of one row of the INSERT."""
    tags_json, *typed_tags = _series(p.tags)
    fields = dict(p.fields)
    if p.measurement == "journey":
        typed_fields: Sequence[Any] = [_sql_value(fields.get(name)) for name in JOURNEY_FIELD_COLUMNS]
    else:
        typed_fields = _NO_JOURNEY_FIELDS
    return (p.measurement, p.time_ms, tags_json, _json(fields), *typed_tags, *typed_fields)


def open_store(path: Path) -> sqlite3.Connection:
    """Open (creating file, parent dirs and schema when missing) the store for writing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT per batch
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SetupError(f"{path} has store schema {version}, newer than this qos-agent knows "
                             f"({SCHEMA_VERSION}); upgrade qos-agent or use another path")
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != AUTO_VACUUM_INCREMENTAL:
            _make_incremental(conn, path, fresh=version == 0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if version < SCHEMA_VERSION:
            conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise SetupError(f"{path} is not a usable SQLite store: {e}") from e
    except BaseException:
        conn.close()
        raise
    return conn


def _make_incremental(conn: sqlite3.Connection, path: Path, fresh: bool) -> None:
    """auto_vacuum=INCREMENTAL: free for a new file; an older store needs one VACUUM (rollback mode)."""
    conn.execute(f"PRAGMA auto_vacuum = {AUTO_VACUUM_INCREMENTAL}")
    if fresh and not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        return  # takes effect when the first table is created
    t0 = time.monotonic()
    size = path.stat().st_size if path.exists() else 0
    try:
        conn.execute("PRAGMA journal_mode=DELETE")  # VACUUM converts auto_vacuum outside WAL mode only
        conn.execute("VACUUM")
    except sqlite3.OperationalError as e:  # busy with another writer, or no space: try next time
        log.warning("sqlite store %s: could not convert to incremental vacuum (%s); it will not shrink "
                    "after pruning until it can", path, e)
        return
    log.info("sqlite store %s converted to incremental vacuum in %.1fs (%.1f MB -> %.1f MB)", path,
             time.monotonic() - t0, size / 1e6, path.stat().st_size / 1e6)


def reclaim(conn: sqlite3.Connection) -> None:
    """Give freed pages back to the file system, and truncate the WAL (after a prune)."""
    with contextlib.suppress(sqlite3.OperationalError):  # another writer: the next prune retries
        # executescript steps the pragma to the end; execute() would free a single page.
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


class SqliteExporter(Exporter):
    """Writes every batch in one transaction; prunes rows older than `retention` hourly, and the oldest
    whenever the store outgrows `max_mb`."""

    type: ClassVar[str] = "sqlite"

    def __init__(self, spec: SqliteSpec) -> None:
        self.spec = spec
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qos-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._last_prune = float("-inf")
        self._closed = False
        self._pruned = 0  # points removed before their retention to stay within max_mb (worker thread writes)
        self._rows_to_check = MIN_CHECK_ROWS  # rows to write before the size is measured again
        self._last_size_log = float("-inf")

    def stats(self) -> SinkStats:
        """What only the store knows: the points `max_mb` made it remove early (shown on /healthz)."""
        return SinkStats(pruned=self._pruned)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def write(self, points: Sequence[Point]) -> None:
        if self._closed:
            raise SetupError(f"the sqlite store {self.spec.path} is closed")
        if points:
            await self._run(self._write_sync, list(points))

    async def prune(self, now_s: float | None = None) -> int:
        """Delete rows older than the retention now (the hourly prune, on demand); rows deleted."""
        return int(await self._run(self._prune_sync, time.time() if now_s is None else now_s))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._run(self._close_sync)
        finally:
            self._executor.shutdown(wait=True)

    # --- worker thread only -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_store(self.spec.path)
        return self._conn

    def _write_sync(self, points: list[Point]) -> None:
        conn = self._connection()
        rows = [row_of(p) for p in points]
        self._rows_to_check -= len(rows)
        if self._rows_to_check <= 0:
            self._bound_size(conn, len(rows))
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: waits politely for other writers
        try:
            # Many rows per statement: sqlite3 lets go of the GIL once per statement step, and each
            # time the event loop's thread takes it back (two thread switches on a busy core); one row
            # per statement cost the loop more than the writing itself (docs/benchmarks.md).
            for i in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[i:i + ROWS_PER_INSERT]
                conn.execute(_insert_rows(len(chunk)), [v for row in chunk for v in row])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        now = time.time()
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._prune_sync(now)

    def _bound_size(self, conn: sqlite3.Connection, incoming: int) -> None:
        """Keep the store within max_mb, the oldest points first (exporters/files/sizebound.py)."""
        deleted, per_row = prune_oldest(conn, self.spec.max_bytes, incoming)
        self._rows_to_check = check_every(self.spec.max_bytes, per_row)
        now = time.time()
        if deleted:
            self._pruned += deleted
            if now - self._last_size_log >= SIZE_LOG_EVERY_S:
                self._last_size_log = now
                log.warning("sqlite store %s reached max_mb (%d MB): removed the %d oldest points (%d so far; "
                            "raise max_mb or lower retention to keep more)", self.spec.path,
                            self.spec.max_bytes >> 20, deleted, self._pruned)

    def _prune_sync(self, now_s: float) -> int:
        conn = self._connection()
        self._last_prune = now_s
        cutoff_ms = int((now_s - self.spec.retention_s) * 1000)
        deleted = conn.execute("DELETE FROM points WHERE time_ms < ?", (cutoff_ms,)).rowcount
        if deleted:
            reclaim(conn)
        return int(deleted)

    def _close_sync(self) -> None:
        if self._conn is not None:
            try:
                # Optional upkeep: with other agents writing the same store it may find the file
                # busy; skipping it loses nothing.
                with contextlib.suppress(sqlite3.OperationalError):
                    self._conn.execute("PRAGMA optimize")
            finally:
                self._conn.close()
                self._conn = None
