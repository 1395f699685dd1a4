"""The embedded default store: every point in one SQLite file that `qos-agent report` reads.

Every measurement is kept generically (tags and fields as JSON), and `journey` points also fill
typed columns, so the report's per journey × region queries run on an index instead of parsing
JSON. SQLite work happens on one dedicated worker thread: writes are serialized, the connection
never changes thread, and the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.model import Point
from qos_agent.plugins.protocols import Exporter, ExporterEnv, LoadContext

DEFAULT_PATH = "qos-results.db"
DEFAULT_RETENTION_S = 30 * 86400.0
PRUNE_EVERY_S = 3600.0
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

INSERT = f"INSERT INTO points ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class StoreError(Exception):
    """The store cannot be used (newer schema, not a database): a message for the user."""


@dataclass(frozen=True, slots=True)
class SqliteSpec:
    path: Path
    retention_s: float = DEFAULT_RETENTION_S


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # made once: dumps(**kw) makes one a call


def _json(value: dict[str, Any]) -> str:
    return _ENCODER.encode(value)


def _sql_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def row_of(p: Point) -> tuple[Any, ...]:
    """One point as the values of INSERT."""
    tags = dict(p.tags)
    fields = dict(p.fields)
    typed_tags = [tags.get(name) for name in TAG_COLUMNS]
    if p.measurement == "journey":
        typed_fields = [_sql_value(fields.get(name)) for name in JOURNEY_FIELD_COLUMNS]
    else:
        typed_fields = [None] * len(JOURNEY_FIELD_COLUMNS)
    return (p.measurement, p.time_ms, _json(tags), _json(fields), *typed_tags, *typed_fields)


def open_store(path: Path) -> sqlite3.Connection:
    """Open (creating file, parent dirs and schema when missing) the store for writing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT per batch
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path} has store schema {version}, newer than this qos-agent knows "
                             f"({SCHEMA_VERSION}); upgrade qos-agent or use another path")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if version < SCHEMA_VERSION:
            conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StoreError(f"{path} is not a usable SQLite store: {e}") from e
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteExporter(Exporter[SqliteSpec]):
    """Writes every batch in one transaction; prunes rows older than `retention` hourly."""

    type: ClassVar[str] = "sqlite"

    def __init__(self, spec: SqliteSpec) -> None:
        self.spec = spec
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qos-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._last_prune = float("-inf")
        self._closed = False

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> SqliteSpec:
        r = Reader(node, problems, {"type", "path", "retention"}, "sqlite exporter")
        path = Path(r.str("path", DEFAULT_PATH))
        retention = r.duration("retention", DEFAULT_RETENTION_S)
        return SqliteSpec(path=load.state_dir / path, retention_s=retention)

    @classmethod
    def create(cls, spec: SqliteSpec, env: ExporterEnv) -> SqliteExporter:
        return cls(spec)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def write(self, points: Sequence[Point]) -> None:
        if self._closed:
            raise StoreError(f"the sqlite store {self.spec.path} is closed")
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
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: waits politely for other writers
        try:
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        now = time.time()
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._prune_sync(now)

    def _prune_sync(self, now_s: float) -> int:
        conn = self._connection()
        self._last_prune = now_s
        cutoff_ms = int((now_s - self.spec.retention_s) * 1000)
        return conn.execute("DELETE FROM points WHERE time_ms < ?", (cutoff_ms,)).rowcount

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
