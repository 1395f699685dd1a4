"""The scorecard from embedded SQLite stores (`--db`, one per agent; read-only, never created).

Each window is one aggregate query per store over the `journey` rows' typed columns and the
store's (journey, region, time_ms) index, so SQLite does the counting; the on-time durations come
back as one `group_concat` string per journey × region (far cheaper than a row each) and are sorted
here for exact nearest-rank quantiles, merged across stores first. `lagged` lives in the fields'
JSON; the compact encoding the store writes (`"lagged":true`) is matched as text, which costs a
fraction of parsing the JSON of every row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qos_agent.reports.disruptions import add_minutes, pair
from qos_agent.reports.errors import ReportError
from qos_agent.reports.figures import Band, Cell, Disruption, FailedRun, Figures, Quantiles, Timeline, nearest_rank
from qos_agent.reports.period import Window
from qos_agent.reports.table import connect_store

LAGGED = """instr(fields, '"lagged":true') > 0"""
# The on-time durations; lagged runs are the rest (`lagged` read once a row: it is the costly part).
CELLS = f"""
SELECT journey, region, max(kind), count(*), sum(success), sum(outcome = 'degraded'), sum(flaky),
       min(time_ms), max(time_ms), min(agent), max(agent),
       group_concat(CASE WHEN {LAGGED} THEN NULL ELSE duration_ms END)
FROM points WHERE measurement = 'journey' AND final = 1 AND time_ms >= ? AND time_ms < ?
GROUP BY journey, region"""
LATEST_TAGS = ("SELECT tags FROM points WHERE measurement = 'journey' AND journey = ? AND region = ? "
               "AND time_ms >= ? AND time_ms < ? ORDER BY time_ms DESC LIMIT 1")
AGENTS = ("SELECT DISTINCT agent FROM points WHERE measurement = 'journey' AND journey = ? AND region = ? "
          "AND time_ms >= ? AND time_ms < ?")  # only where a journey × region has several agents in one store
MMAP_BYTES = 1 << 30  # read the store through the page cache, not a read() per page
LAST_RUN = ("SELECT max(time_ms) FROM points WHERE measurement = 'journey' AND journey = ? AND region = ? "
            "AND agent = ? AND time_ms >= ? AND time_ms < ?")
DISRUPTIONS = ("SELECT time_ms, tags, fields FROM points WHERE measurement = 'disruption' AND time_ms < ? "
               "ORDER BY time_ms, id")
FAILED_RUNS = ("SELECT time_ms, journey, region, agent, failed_step, error, error_message, "
               "json_extract(fields, '$.trace_id') FROM points WHERE measurement = 'journey' AND time_ms >= ? "
               "AND time_ms < ? AND final = 1 AND success = 0 ORDER BY time_ms DESC LIMIT ?")
TIMELINE = f"""
SELECT journey, region, max(kind), (time_ms - ?) / ? AS bucket, sum(success = 1 AND outcome IS NOT 'degraded'),
       sum(outcome = 'degraded'), sum(success = 0), group_concat(CASE WHEN {LAGGED} THEN NULL ELSE duration_ms END)
FROM points WHERE measurement = 'journey' AND final = 1 AND time_ms >= ? AND time_ms < ?
GROUP BY journey, region, bucket"""


def durations(concat: object) -> list[float]:
    return list(map(float, str(concat).split(","))) if concat else []


def merge(into: Cell, cell: Cell) -> None:
    """Add one store's cell to the figures' (several agents of one region, in several stores)."""
    into.kind = cell.kind
    for name in ("runs", "successes", "degraded", "flaky", "lagged", "disrupted_s", "hidden_s", "disruptions"):
        setattr(into, name, getattr(into, name) + getattr(cell, name))
    into.seen(cell.first_ms, cell.last_ms)
    into.agents |= cell.agents
    into.owner = cell.owner or into.owner
    into.customer_reason = cell.customer_reason or into.customer_reason
    into.weight = cell.weight or into.weight


class SqliteSource:
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        for path in self.paths:
            connect_store(path).close()  # missing, not a store, too new: ReportError now, not mid-report
        self.description = "SQLite store" + ("s " if len(self.paths) > 1 else " ") + ", ".join(map(str, self.paths))

    def _rows(self, conn: sqlite3.Connection, path: Path, sql: str,
              args: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise ReportError(f"cannot read {path}: {e}") from None

    def _store(self, path: Path, window: Window) -> tuple[Figures, dict[tuple[str, str], list[float]]]:
        """One store's figures for the window, and its on-time durations per journey × region."""
        figures = Figures(window)
        on_time: dict[tuple[str, str], list[float]] = {}
        conn = connect_store(path)
        try:
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            span = (window.from_ms, window.to_ms)
            for (journey, region, kind, runs, ok, degraded, flaky, first, last, agent, other,
                 concat) in self._rows(conn, path, CELLS, span):
                cell = figures.cell(str(journey), str(region))
                cell.kind = str(kind or "journey")
                cell.runs, cell.successes, cell.degraded = int(str(runs)), int(str(ok or 0)), int(str(degraded or 0))
                on_time[(str(journey), str(region))] = durations(concat)
                cell.flaky, cell.lagged = int(str(flaky or 0)), cell.runs - len(on_time[(cell.journey, cell.region)])
                cell.seen(int(str(first)), int(str(last)))
                cell.agents = {str(agent), str(other)}
                if agent != other:
                    cell.agents = {str(a) for (a,) in self._rows(conn, path, AGENTS, (journey, region, *span))}
                [(tags,)] = self._rows(conn, path, LATEST_TAGS, (journey, region, *span)) or [("{}",)]
                own = json.loads(str(tags))
                cell.owner = str(own.get("owner", ""))
                cell.customer_reason = str(own.get("customer_reason", ""))
                cell.weight = str(own.get("weight", ""))
            found = self._disruptions(conn, path, window)

            def last_run(d: Disruption) -> int | None:
                [(t,)] = self._rows(conn, path, LAST_RUN, (d.journey, d.region, d.agent, d.start_ms, window.to_ms))
                return int(str(t)) if t is not None else None

            add_minutes(figures.cell, found, window, last_run)
        finally:
            conn.close()
        return figures, on_time

    def figures(self, window: Window) -> Figures:
        figures = Figures(window)
        on_time: dict[tuple[str, str], list[float]] = {}
        with ThreadPoolExecutor(min(3, len(self.paths))) as pool:  # SQLite lets go of the GIL while it reads
            stores = list(pool.map(lambda path: self._store(path, window), self.paths))
        for part, durations_of in stores:
            for key, cell in part.cells.items():
                merge(figures.cell(*key), cell)
            for key, values in durations_of.items():
                on_time.setdefault(key, []).extend(values)
        per_journey: dict[str, list[float]] = {}
        for (journey, region), values in on_time.items():
            values.sort()
            figures.cells[(journey, region)].latency = Quantiles.of_sorted(values)
            if figures.cells[(journey, region)].kind != "uptime":
                per_journey.setdefault(journey, []).extend(values)
        figures.journey_latency = {j: Quantiles.of_sorted(sorted(v)) for j, v in per_journey.items()}
        return figures

    def _disruptions(self, conn: sqlite3.Connection, path: Path, window: Window) -> list[Disruption]:
        rows = self._rows(conn, path, DISRUPTIONS, (window.to_ms,))
        found = pair((int(str(t)), json.loads(str(tags)), json.loads(str(fields))) for t, tags, fields in rows)
        return [d for d in found if d.end_ms is None or d.end_ms >= window.from_ms]

    def disruptions(self, window: Window) -> list[Disruption]:
        found: list[Disruption] = []
        for path in self.paths:
            conn = connect_store(path)
            try:
                found += self._disruptions(conn, path, window)
            finally:
                conn.close()
        return sorted(found, key=lambda d: d.start_ms)

    def failed_runs(self, window: Window, limit: int) -> list[FailedRun]:
        """The newest `limit` failed final runs of every store, newest first."""
        found: list[FailedRun] = []
        for path in self.paths:
            conn = connect_store(path)
            try:
                rows = self._rows(conn, path, FAILED_RUNS, (window.from_ms, window.to_ms, limit))
            finally:
                conn.close()
            found += [FailedRun(int(str(t)), *(str(v or "") for v in rest)) for t, *rest in rows]
        return sorted(found, key=lambda r: r.time_ms, reverse=True)[:limit]

    def _timeline_rows(self, path: Path, window: Window, bucket_ms: int) -> list[tuple[object, ...]]:
        conn = connect_store(path)
        try:
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            return self._rows(conn, path, TIMELINE, (window.from_ms, bucket_ms, window.from_ms, window.to_ms))
        finally:
            conn.close()

    def timeline(self, window: Window, bucket_ms: int) -> Timeline:
        count = max(1, -(-(window.to_ms - window.from_ms) // bucket_ms))
        timeline = Timeline(window.from_ms, bucket_ms, count)
        on_time: dict[tuple[str, str, int], list[float]] = {}
        with ThreadPoolExecutor(min(3, len(self.paths))) as pool:
            stores = list(pool.map(lambda path: self._timeline_rows(path, window, bucket_ms), self.paths))
        for rows in stores:
            for journey, region, kind, b, passed, degraded, failed, concat in rows:
                i = min(count - 1, int(str(b)))
                bucket = timeline.series(str(journey), str(region), str(kind or "journey"))[i]
                bucket.passed += int(str(passed or 0))
                bucket.degraded += int(str(degraded or 0))
                bucket.failed += int(str(failed or 0))
                if kind != "uptime":
                    on_time.setdefault((str(journey), str(region), i), []).extend(durations(concat))
        for (journey, region, i), values in on_time.items():
            timeline.runs[(journey, region)][i].p95_ms = nearest_rank(sorted(values), 95)
        timeline.bands = [Band(d.journey, d.region, d.start_ms, d.end_ms, d.uptime_ok, d.reason)
                          for d in self.disruptions(window)]
        return timeline
