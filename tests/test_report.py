"""`qos-agent report` over a real store written by the sqlite exporter: exact figures back."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from exporters.files import sqlite as store
from exporters.files.config import SqliteSpec, SqliteType
from qos_agent.delivery.points import points_of
from qos_agent.model import ErrorClass, Point
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.reports import table as report
from qos_agent.reports.table import (
    Disruption,
    ReportError,
    load_disruptions,
    load_report,
    percentile,
    render_report,
    show_report,
)
from tests.support.results import disruption, failed, journey, passed

NOW = 1_900_000_000_000  # a fixed "now" handed to the report; the rows are written relative to it
MIN = 60_000


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=300, color_system=None, force_terminal=False), out


async def write_store(db: Path, points: list[Point]) -> None:
    # Retention far beyond NOW - 4h, so the first write's prune keeps every row whatever the clock.
    exporter = SqliteType.create(SqliteSpec(path=db, retention_s=1e10),
                                     ExporterEnv(state_dir=db.parent, region="eu-west", agent="agent-1"))
    await exporter.write(points)
    await exporter.close()


def sample_points() -> list[Point]:
    results = []
    for i in range(20):  # eu-west checkout: durations 100..2000 ms, one run every 10 minutes
        start = NOW - (20 - i) * 10 * MIN - 1000
        duration = 100.0 * (i + 1)
        steps = [passed("login", duration / 2), passed("pay", duration / 2)]
        if i == 5:
            steps = [passed("login", duration / 2),
                     failed("pay", ErrorClass.STATUS, "HTTP 503", duration / 2)]
        if i == 12:
            steps = [failed("login", ErrorClass.TIMEOUT, "no answer in 10s", duration)]
        if i == 17:  # a retried run: attempt 1 failed (not final, not counted), attempt 2 passed
            results.append(journey(steps=[failed("login", duration_ms=9999.0)], start_ms=start - 5000,
                                   run_id="r17", attempt=1, final=False))
            results.append(journey(steps=steps, start_ms=start, run_id="r17", attempt=2))
            continue
        results.append(journey(steps=steps, start_ms=start))
    for i, d in enumerate((300.0, 100.0, 200.0)):
        results.append(journey(steps=[passed("login", d)], region="us-east", start_ms=NOW - (i + 1) * MIN))
    return points_of(results)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert [percentile([10.0, 20.0, 30.0], p) for p in (0, 50, 95)] == [10.0, 20.0, 30.0]
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


async def test_report_per_journey_and_region(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    await write_store(db, sample_points())
    rows = load_report(db, None, now_ms=NOW)
    assert [(r.journey, r.region) for r in rows] == [("checkout", "eu-west"), ("checkout", "us-east")]
    eu, us = rows
    assert (eu.runs, eu.successes, eu.success_ratio, eu.flaky) == (20, 18, 0.9, 1)
    assert (eu.p50_ms, eu.p95_ms, eu.p99_ms) == (1000.0, 1900.0, 2000.0)
    assert eu.last_run_ms == NOW - 10 * MIN - 1000
    assert eu.last_error == "login: timeout: no answer in 10s"
    assert eu.last_error_ms == NOW - 8 * 10 * MIN - 1000
    assert (us.runs, us.successes, us.p50_ms, us.p95_ms, us.flaky) == (3, 3, 200.0, 300.0, 0)
    assert us.last_error == ""
    assert us.last_run_ms == NOW - MIN

    recent = load_report(db, 3600, now_ms=NOW)  # the last hour: eu-west runs 15..19 only
    assert [(r.region, r.runs, r.p50_ms, r.p95_ms, r.flaky, r.last_error) for r in recent] == [
        ("eu-west", 5, 1800.0, 2000.0, 1, ""), ("us-east", 3, 200.0, 300.0, 0, "")]

    c, out = console()
    render_report(rows, c)
    text = out.getvalue()
    lines = [line for line in text.splitlines() if "eu-west" in line]
    assert len(lines) == 1
    for cell in ("checkout", "20", "90.00", "1000", "1900", "2000", "login: timeout: no answer in 10s"):
        assert cell in lines[0]
    for header in ("journey", "region", "runs", "success %", "p50 ms", "p95 ms", "p99 ms", "flaky",
                   "last error"):
        assert header in text


async def test_disruptions_pair_open_and_close(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    await write_store(db, [
        disruption("open", NOW - 100 * MIN, reason="success 80.0% < 99.5%", uptime_ok=True),
        disruption("close", NOW - 80 * MIN, reason="recovered"),
        disruption("close", NOW - 70 * MIN, region="us-east"),  # no open one: ignored
        disruption("open", NOW - 30 * MIN, reason="p95 2400 ms > 2000 ms", uptime_ok=False,
                   success_ratio=1.0, latency_p95_ms=2400.0),
        disruption("open", NOW - 20 * MIN, reason="again"),  # already open: it continues
    ])
    found = load_disruptions(db, None, now_ms=NOW)
    assert found == [
        Disruption("checkout", "eu-west", "agent-1", NOW - 100 * MIN, NOW - 80 * MIN,
                   "success 80.0% < 99.5%", True, 0.8, 300.0),
        Disruption("checkout", "eu-west", "agent-1", NOW - 30 * MIN, None, "p95 2400 ms > 2000 ms", False,
                   1.0, 2400.0),
    ]
    assert [d.duration_s(NOW) for d in found] == [1200.0, 1800.0]
    assert [d.start_ms for d in load_disruptions(db, 3600, now_ms=NOW)] == [NOW - 30 * MIN]
    assert len(load_disruptions(db, 2 * 3600, now_ms=NOW)) == 2

    c, out = console()
    report.render_disruptions(found, c, now_ms=NOW)
    text = out.getvalue()
    assert "20m00s" in text and "30m00s" in text and "open" in text
    assert "green (missed it)" in text and "p95 2400 ms > 2000 ms" in text


async def test_show_report_prints_both_tables(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    await write_store(db, [*sample_points(), disruption("open", NOW - 30 * MIN)])
    c, out = console()
    assert show_report(db, None, c) == 0
    text = out.getvalue()
    assert "Journeys (final runs)" in text and "Disruptions" in text


async def test_show_report_without_disruptions_has_one_table(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    await write_store(db, sample_points())
    c, out = console()
    assert show_report(db, None, c) == 0
    assert "Journeys" in out.getvalue() and "Disruptions" not in out.getvalue()


def test_report_on_missing_db(tmp_path: Path) -> None:
    db = tmp_path / "nothing" / "qos-results.db"
    with pytest.raises(ReportError) as e:
        load_report(db, None)
    assert str(e.value) == f"no results yet in {db} — run `qos-agent run` first"
    c, out = console()
    assert show_report(db, 3600, c) == 1
    assert out.getvalue() == f"no results yet in {db} — run `qos-agent run` first\n"
    assert not db.parent.exists()  # reading never creates anything


async def test_report_on_empty_store(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store.open_store(db).close()  # the schema, no rows
    assert load_report(db, None) == [] and load_disruptions(db, None) == []
    c, out = console()
    assert show_report(db, 3600, c) == 1
    assert out.getvalue() == f"no results yet in {db} (last 1h00m) — run `qos-agent run` first\n"
    # Only runs older than the window: the same message.
    await write_store(db, points_of([journey(start_ms=NOW - 10 * 3600_000)]))
    assert load_report(db, 3600, now_ms=NOW) == []


def test_report_on_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("these are not the results you are looking for\n" * 100)
    with pytest.raises(ReportError, match="is not a qos-agent results store"):
        load_report(db, None)
    newer = tmp_path / "newer.db"
    conn = store.open_store(newer)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(ReportError, match="newer qos-agent"):
        load_disruptions(newer, None)


async def test_report_counts_lagged_runs(tmp_path: Path) -> None:
    results = []
    for i in range(6):
        r = journey(steps=[passed("login", 100.0)], start_ms=NOW - (i + 1) * MIN, run_id=f"l{i}")
        r.lagged, r.loop_lag_ms = i < 2, 120.0 if i < 2 else 1.0
        results.append(r)
    db = tmp_path / "l.db"
    await write_store(db, points_of(results))
    [row] = load_report(db, None, now_ms=NOW)
    assert (row.runs, row.lagged) == (6, 2)
    c, out = console()
    render_report([row], c)
    head = next(line for line in out.getvalue().splitlines() if "flaky" in line)
    line = next(line for line in out.getvalue().splitlines() if "eu-west" in line)
    column = [c.strip() for c in head.split("┃")].index("lagged")
    assert line.split("│")[column].strip() == "2", (head, line)
