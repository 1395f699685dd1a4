"""`qos-agent report`: what the embedded SQLite store holds, per journey × region.

Reads the store the `sqlite` exporter writes (read-only) and summarises final journey runs:
runs, success ratio, p50/p95/p99 duration, flaky runs, lagged runs (taken while the agent's own
event loop was late, see docs/metrics.md), the last error; then the disruptions the
evaluator opened and closed. Percentiles use the nearest-rank method: the p-th percentile of n
sorted values is the value at rank ceil(p/100 · n) — always a duration that was really measured.
They cover every final run, failed ones included: a failure's wait is what the customer felt too.
A retried run counts once (its final attempt); earlier attempts are stored but not counted.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from exporters.files.sqlite import SCHEMA_VERSION
from qos_agent.reports.disruptions import pair
from qos_agent.reports.errors import ReportError
from qos_agent.reports.figures import Disruption

__all__ = ["Disruption", "ReportError", "ReportRow", "connect_store", "load_disruptions", "load_report", "percentile",
           "query_store", "render_disruptions", "render_report", "show_report"]


@dataclass(frozen=True, slots=True)
class ReportRow:
    journey: str
    region: str
    runs: int
    successes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    flaky: int
    last_run_ms: int
    last_error: str = ""  # "pay: status: HTTP 503" of the newest failed run, "" if none
    last_error_ms: int | None = None
    lagged: int = 0  # runs whose duration includes the agent's own event-loop delay

    @property
    def success_ratio(self) -> float:
        return self.successes / self.runs if self.runs else 0.0


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _now_ms() -> int:
    return int(time.time() * 1000)


def cutoff_ms(since_s: float | None, now_ms: int) -> int | None:
    return None if since_s is None else now_ms - int(since_s * 1000)


def connect_store(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise ReportError(f"no results yet in {db_path} — run `qos-agent run` first")
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ReportError(f"cannot open {db_path}: {e}") from e
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        conn.close()
        raise ReportError(f"{db_path} is not a qos-agent results store: {e}") from e
    if version > SCHEMA_VERSION:
        conn.close()
        raise ReportError(f"{db_path} was written by a newer qos-agent (store schema {version}); "
                          "upgrade qos-agent to read it")
    if version < 1:
        conn.close()
        raise ReportError(f"no results yet in {db_path} — run `qos-agent run` first")
    return conn


def query_store(db_path: Path, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
    conn = connect_store(db_path)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        raise ReportError(f"cannot read {db_path}: {e}") from e
    finally:
        conn.close()


def load_report(db_path: str | Path, since_s: float | None = None, *,
                now_ms: int | None = None) -> list[ReportRow]:
    """Per journey × region over final runs (since `since_s` seconds ago, or all); sorted by name.

    Raises ReportError (with a message for the user) when the store is missing or unreadable.
    """
    cutoff = cutoff_ms(since_s, _now_ms() if now_ms is None else now_ms)
    sql = ("SELECT journey, region, time_ms, success, duration_ms, flaky, failed_step, error, "
           "error_message, json_extract(fields, '$.lagged') FROM points WHERE measurement = 'journey' AND final = 1"
           + (" AND time_ms >= ?" if cutoff is not None else "") + " ORDER BY journey, region, time_ms")
    rows = query_store(Path(db_path), sql, (cutoff,) if cutoff is not None else ())
    groups: dict[tuple[str, str], list[tuple[object, ...]]] = {}
    for row in rows:
        groups.setdefault((str(row[0]), str(row[1])), []).append(row)
    return [_summarise(journey, region, runs) for (journey, region), runs in groups.items()]


def _summarise(journey: str, region: str, runs: list[tuple[object, ...]]) -> ReportRow:
    durations = sorted(float(r[4]) for r in runs if isinstance(r[4], int | float))
    failed = [r for r in runs if not r[3]]
    last_error, last_error_ms = "", None
    if failed:
        _, _, t, _, _, _, step, error, message, _ = failed[-1]
        detail = ": ".join(str(x) for x in (error, message) if x)
        last_error = f"{step}: {detail}" if step else detail or "failed"
        last_error_ms = int(str(t))
    return ReportRow(
        journey=journey, region=region, runs=len(runs), successes=len(runs) - len(failed),
        p50_ms=percentile(durations, 50), p95_ms=percentile(durations, 95),
        p99_ms=percentile(durations, 99), flaky=sum(1 for r in runs if r[5]),
        last_run_ms=int(str(runs[-1][2])), last_error=last_error, last_error_ms=last_error_ms,
        lagged=sum(1 for r in runs if r[9]),
    )


def load_disruptions(db_path: str | Path, since_s: float | None = None, *,
                     now_ms: int | None = None) -> list[Disruption]:
    """Disruptions (open/close pairs of `disruption` points) that overlap the window, oldest first.

    Pairs are matched per journey × region × agent in time order; a second `open` while one is
    open continues it, a `close` with no open one is ignored.
    """
    cutoff = cutoff_ms(since_s, _now_ms() if now_ms is None else now_ms)
    rows = query_store(Path(db_path), "SELECT time_ms, tags, fields FROM points "
                       "WHERE measurement = 'disruption' ORDER BY time_ms, id", ())
    found = pair((int(str(t)), json.loads(str(tags)), json.loads(str(fields))) for t, tags, fields in rows)
    return [d for d in found if cutoff is None or d.end_ms is None or d.end_ms >= cutoff]


def _when(ms: int) -> str:
    """Times are UTC, and say so (a report read in another zone must not shift them silently)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def render_report(rows: list[ReportRow], console: Console) -> None:
    table = Table(title="Journeys (final runs)", title_justify="left")
    for name in ("journey", "region"):
        table.add_column(name)
    for name in ("runs", "success %", "p50 ms", "p95 ms", "p99 ms", "flaky", "lagged"):
        table.add_column(name, justify="right")
    table.add_column("last error", overflow="fold")
    for r in rows:
        pct = 100 * r.success_ratio
        style = "green" if r.successes == r.runs else ("yellow" if pct >= 99 else "red")
        error = r.last_error
        if error and r.last_error_ms is not None:
            error = f"{error} ({_when(r.last_error_ms)})"
        table.add_row(r.journey, r.region, str(r.runs), f"[{style}]{pct:.2f}[/]", f"{r.p50_ms:.0f}",
                      f"{r.p95_ms:.0f}", f"{r.p99_ms:.0f}", str(r.flaky), str(r.lagged), error)
    console.print(table)


def render_disruptions(disruptions: list[Disruption], console: Console, *, now_ms: int | None = None) -> None:
    now = _now_ms() if now_ms is None else now_ms
    table = Table(title="Disruptions", title_justify="left")
    for name in ("journey", "region", "started", "ended", "duration", "reason", "uptime check", "hidden min"):
        table.add_column(name)
    for d in disruptions:
        ended = "[red]open[/]" if d.end_ms is None else _when(d.end_ms)
        uptime = {True: "[yellow]green (missed it)[/]", False: "red", None: "?"}[d.uptime_ok]
        hidden = "" if d.hidden_minutes is None else f"{d.hidden_minutes:.1f}"
        table.add_row(d.journey, d.region, _when(d.start_ms), ended, _span(d.duration_s(now)), d.reason,
                      uptime, hidden)
    console.print(table)


def show_report(db_path: str | Path, since_s: float | None, console: Console) -> int:
    """The whole `report` command: tables, or a one-line message; the exit code (0, or 1 on no data)."""
    try:
        rows = load_report(db_path, since_s)
        disruptions = load_disruptions(db_path, since_s)
    except ReportError as e:
        console.print(str(e), markup=False, highlight=False)
        return 1
    if not rows and not disruptions:
        window = "" if since_s is None else f" (last {_span(since_s)})"
        console.print(f"no results yet in {db_path}{window} — run `qos-agent run` first",
                      markup=False, highlight=False)
        return 1
    if rows:
        render_report(rows, console)
    if disruptions:
        render_disruptions(disruptions, console)
    return 0
