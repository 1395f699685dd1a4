"""The local sinks (sqlite, jsonl, junit) on real files: what they write is read back exactly."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from exporters.files.config import JsonlSpec, JsonlType, JunitSpec, JunitType, SqliteSpec, SqliteType
from exporters.files.jsonl import JsonlExporter
from exporters.files.junit import JunitExporter
from exporters.files.sqlite import SCHEMA, SCHEMA_VERSION, SqliteExporter
from qos_agent.delivery.points import points_of, result_points
from qos_agent.errors import SetupError
from qos_agent.language.nodes import Node, Problems
from qos_agent.model import AgentConfig, Config, ErrorClass, JourneyResult, Location, Outcome, Point
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.runloop import check
from tests.support.results import T0_MS, degraded, disruption, failed, journey, passed, skipped

LOC = Location("journeys.yaml", 1, 1)


def node(value: Any, line: int = 1) -> Node:
    """A config node as the loader makes it (every value at its own line)."""
    loc = Location("journeys.yaml", line, 3)
    if isinstance(value, dict):
        kids = {k: node(v, line + i + 1) for i, (k, v) in enumerate(value.items())}
        return Node(kids, loc, {k: kids[k].loc for k in kids})
    if isinstance(value, list):
        return Node([node(v, line + i + 1) for i, v in enumerate(value)], loc)
    return Node(value, loc)


@pytest.fixture
def load(tmp_path: Path) -> LoadContext:
    return LoadContext(config_dir=tmp_path / "conf", state_dir=tmp_path / "state")


def env(tmp_path: Path) -> ExporterEnv:
    return ExporterEnv(state_dir=tmp_path / "state", region="eu-west", agent="agent-1")


def sample_results(t0: int = T0_MS) -> list[Any]:
    """A passing run, a failing run (pay fails, logout skipped), and a flaky run (2 attempts)."""
    return [
        journey("checkout", [passed("login", 120.0), passed("pay", 80.0)], start_ms=t0, run_id="r1"),
        journey("checkout", [passed("login", 110.0), failed("pay", ErrorClass.STATUS, "HTTP 503"),
                             skipped("logout")], start_ms=t0 + 1000, run_id="r2"),
        journey("signup", [failed("form", ErrorClass.TIMEOUT, "no answer in 10s")], region="us-east",
                start_ms=t0 + 2000, run_id="r3", attempt=1, final=False),
        journey("signup", [passed("form", 300.0)], region="us-east", start_ms=t0 + 3000,
                run_id="r3", attempt=2),
    ]


# ---------------------------------------------------------------------------------------------
# sqlite
# ---------------------------------------------------------------------------------------------


def recent() -> int:
    """A run start inside the default retention (older rows are pruned on the first write)."""
    return int(time.time() * 1000) - 60_000


def rows(db: Path, sql: str, *args: Any) -> list[Any]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


def test_sqlite_config_defaults_and_errors(load: LoadContext) -> None:
    problems = Problems()
    spec = SqliteType.from_config(node({"type": "sqlite"}), problems, load)
    assert not problems
    assert spec == SqliteSpec(path=load.state_dir / "qos-results.db", retention_s=30 * 86400)
    spec = SqliteType.from_config(node({"type": "sqlite", "path": "db/r.db", "retention": "2h"}),
                                      problems, load)
    assert spec == SqliteSpec(path=load.state_dir / "db/r.db", retention_s=7200)
    assert not problems
    SqliteType.from_config(node({"type": "sqlite", "retension": "1h", "retention": "soon"}), problems,
                               load)
    assert [str(p) for p in problems.sorted()] == [
        "journeys.yaml:3:3: unknown key 'retension' in sqlite exporter (did you mean 'retention'?)",
        "journeys.yaml:4:3: 'retention' is not a duration: 'soon' "
        "(use a number and a unit: 250ms, 10s, 5m, 1h)",
    ]


async def test_sqlite_stores_every_point_with_typed_journey_columns(tmp_path: Path,
                                                                    load: LoadContext) -> None:
    spec = SqliteType.from_config(node({"type": "sqlite", "path": "deep/dir/r.db"}), Problems(), load)
    exporter = SqliteType.create(spec, env(tmp_path))
    t0 = recent()
    points = points_of(sample_results(t0))
    extra = [disruption("open", t0 + 5000),
             Point("agent", (("agent", "agent-1"), ("region", "eu-west")),
                   (("in_flight", 3), ("scheduler_lag_ms", 1.5)), t0 + 6000)]
    await exporter.write(points[:3])
    await exporter.write(points[3:] + extra)
    await exporter.close()
    await exporter.close()  # idempotent

    db = tmp_path / "state/deep/dir/r.db"
    stored = rows(db, "SELECT measurement, time_ms, tags, fields FROM points ORDER BY id")
    assert [{**r, "tags": json.loads(r["tags"]), "fields": json.loads(r["fields"])} for r in stored] == [
        p.as_dict() for p in points + extra]

    runs = rows(db, "SELECT journey, region, agent, kind, success, outcome, duration_ms, attempt, final, "
                    "flaky, run_id, failed_step, error, error_message, time_ms FROM points "
                    "WHERE measurement = 'journey' ORDER BY id")
    common = {"agent": "agent-1", "kind": "journey"}
    assert runs == [
        {**common, "journey": "checkout", "region": "eu-west", "success": 1, "outcome": "passed",
         "duration_ms": 200.0, "attempt": 1, "final": 1, "flaky": 0, "run_id": "r1", "failed_step": "",
         "error": "", "error_message": "", "time_ms": t0},
        {**common, "journey": "checkout", "region": "eu-west", "success": 0, "outcome": "failed",
         "duration_ms": 160.0, "attempt": 1, "final": 1, "flaky": 0, "run_id": "r2", "failed_step": "pay",
         "error": "status", "error_message": "HTTP 503", "time_ms": t0 + 1000},
        {**common, "journey": "signup", "region": "us-east", "success": 0, "outcome": "failed",
         "duration_ms": 50.0, "attempt": 1, "final": 0, "flaky": 0, "run_id": "r3", "failed_step": "form",
         "error": "timeout", "error_message": "no answer in 10s", "time_ms": t0 + 2000},
        {**common, "journey": "signup", "region": "us-east", "success": 1, "outcome": "passed",
         "duration_ms": 300.0, "attempt": 2, "final": 1, "flaky": 1, "run_id": "r3", "failed_step": "",
         "error": "", "error_message": "", "time_ms": t0 + 3000},
    ]
    # Step and other measurements keep their tags in typed columns, never journey-only fields.
    steps = rows(db, "SELECT journey, region, success, duration_ms, final FROM points "
                     "WHERE measurement = 'step' ORDER BY id")
    assert steps[0] == {"journey": "checkout", "region": "eu-west", "success": None, "duration_ms": None,
                        "final": None}
    assert len(steps) == 7
    d = rows(db, "SELECT journey, region, kind, tags FROM points WHERE measurement = 'disruption'")
    assert d == [{"journey": "checkout", "region": "eu-west", "kind": None,
                  "tags": '{"agent":"agent-1","journey":"checkout","region":"eu-west","state":"open"}'}]

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = " ".join(str(r[3]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT duration_ms FROM points WHERE measurement = 'journey' "
            "AND journey = 'checkout' AND region = 'eu-west' AND time_ms >= 0"))
    assert "points_journey_runs" in plan


async def test_sqlite_reopen_appends_and_keeps_schema(tmp_path: Path) -> None:
    spec = SqliteSpec(path=tmp_path / "r.db")
    for i in range(2):
        exporter = SqliteType.create(spec, env(tmp_path))
        await exporter.write(result_points(journey(start_ms=int(time.time() * 1000) + i)))
        await exporter.close()
    assert rows(spec.path, "SELECT count(*) AS n FROM points WHERE measurement = 'journey'") == [{"n": 2}]


async def test_sqlite_retention_prunes_old_rows_at_most_hourly(tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    spec = SqliteSpec(path=tmp_path / "r.db", retention_s=3600)
    exporter = SqliteType.create(spec, env(tmp_path))
    try:
        old, new = journey(start_ms=now_ms - 7200_000, run_id="old"), journey(start_ms=now_ms, run_id="new")
        await exporter.write(result_points(old) + result_points(new))  # first write prunes
        assert rows(spec.path, "SELECT run_id FROM points WHERE measurement = 'journey'") == [
            {"run_id": "new"}]
        await exporter.write(result_points(journey(start_ms=now_ms - 7200_000, run_id="late")))
        # Within the hour: not pruned again yet.
        assert len(rows(spec.path, "SELECT id FROM points WHERE measurement = 'journey'")) == 2
        assert await exporter.prune() == 2  # the late journey point and its one step point
        assert rows(spec.path, "SELECT run_id FROM points WHERE measurement = 'journey'") == [
            {"run_id": "new"}]
    finally:
        await exporter.close()


def _file_mb(path: Path) -> float:
    wal = path.with_name(path.name + "-wal")
    return (path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 1e6


async def _fill(exporter: SqliteExporter, start_ms: int, runs: int) -> None:
    for chunk in range(0, runs, 500):
        points = [p for i in range(chunk, min(runs, chunk + 500))
                  for p in result_points(journey(start_ms=start_ms + i, run_id=f"r{i}",
                                                 error_message="x" * 300))]
        await exporter.write(points)


async def test_sqlite_file_shrinks_after_a_prune(tmp_path: Path) -> None:
    """Pruned rows give their space back (auto_vacuum=INCREMENTAL), the WAL is truncated too."""
    now_ms = int(time.time() * 1000)
    spec = SqliteSpec(path=tmp_path / "r.db", retention_s=3600)
    exporter = SqliteType.create(spec, env(tmp_path))
    try:
        await _fill(exporter, now_ms - 7200_000, 3000)  # old: pruned below
        await _fill(exporter, now_ms, 300)
        full = _file_mb(spec.path)
        assert await exporter.prune() == 5000  # the first write already pruned the first batch
        after = _file_mb(spec.path)
    finally:
        await exporter.close()
    assert rows(spec.path, "SELECT count(*) AS n FROM points WHERE measurement = 'journey'") == [{"n": 300}]
    assert after < full / 4, (full, after)  # about a tenth is kept


async def test_an_older_store_is_converted_to_incremental_vacuum(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # as stores were made before: auto_vacuum NONE, WAL
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO points (measurement, time_ms, tags, fields) VALUES (?, ?, '{}', '{}')",
                         [("journey", i) for i in range(1000)])
    conn.close()
    exporter = SqliteType.create(SqliteSpec(path=db), env(tmp_path))
    try:
        await exporter.write(result_points(journey(start_ms=int(time.time() * 1000))))
    finally:
        await exporter.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM points").fetchone()[0] == 2  # old rows pruned, new kept
    conn.close()


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    exporter = SqliteType.create(SqliteSpec(path=db), env(tmp_path))
    with pytest.raises(SetupError, match="schema 99, newer than"):
        await exporter.write(result_points(journey()))
    await exporter.close()


async def test_sqlite_concurrent_writes_are_serialized(tmp_path: Path) -> None:
    exporter = SqliteType.create(SqliteSpec(path=tmp_path / "r.db"), env(tmp_path))
    batches = [[journey(run_id=f"b{b}-{i}", start_ms=recent() + i) for i in range(200)] for b in range(5)]
    await asyncio.gather(*(exporter.write(points_of(b)) for b in batches))
    await exporter.close()
    assert rows(tmp_path / "r.db", "SELECT count(*) AS n FROM points") == [{"n": 2000}]


async def test_sqlite_write_does_not_block_the_loop(tmp_path: Path) -> None:
    exporter = SqliteType.create(SqliteSpec(path=tmp_path / "r.db"), env(tmp_path))
    t0 = recent()
    results = [journey(run_id=f"r{i}", start_ms=t0 + i,
                       steps=[passed("login", 10.0, phases={"dns_ms": 1.0, "connect_ms": 2.0})])
               for i in range(10_000)]
    points = points_of(results)
    assert len(points) == 20_000
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set() and len(ticks) < 100_000:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.002)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    before = len(ticks)
    await exporter.write(points)
    elapsed = time.perf_counter() - started
    during = len(ticks) - before
    stop.set()
    await task
    await exporter.close()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert rows(tmp_path / "r.db", "SELECT count(*) AS n FROM points") == [{"n": 20_000}]
    assert during >= 5, f"the loop ticked {during} times during a {elapsed:.3f}s write"
    assert max(gaps) < 0.15, f"the loop stalled {max(gaps):.3f}s"


# ---------------------------------------------------------------------------------------------
# jsonl
# ---------------------------------------------------------------------------------------------


def test_jsonl_config(load: LoadContext) -> None:
    problems = Problems()
    assert JsonlType.from_config(node({"type": "jsonl"}), problems, load) == JsonlSpec(
        path=load.state_dir / "qos-results.jsonl", max_bytes=100 * 1024 * 1024, keep=3)
    assert JsonlType.from_config(node({"type": "jsonl", "path": "-"}), problems, load).path is None
    assert not problems
    JsonlType.from_config(node({"type": "jsonl", "max_mb": 0, "keep": -1}), problems, load)
    assert [str(p) for p in problems.sorted()] == [
        "journeys.yaml:3:3: 'max_mb' must be a positive number of megabytes (write e.g. max_mb: 100)",
        "journeys.yaml:4:3: 'keep' must be a whole number 0..1000 (write e.g. keep: 3)",
    ]


async def test_jsonl_appends_one_object_per_point(tmp_path: Path, load: LoadContext) -> None:
    spec = JsonlType.from_config(node({"type": "jsonl", "path": "out/r.jsonl"}), Problems(), load)
    points = points_of(sample_results())
    for part in (points[:4], points[4:]):
        exporter = JsonlType.create(spec, env(tmp_path))  # a restart appends
        await exporter.write(part)
        await exporter.write([])
        await exporter.close()
    lines = (tmp_path / "state/out/r.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [p.as_dict() for p in points]


async def test_jsonl_flushes_each_batch(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    exporter = JsonlExporter(JsonlSpec(path=path))
    await exporter.write(result_points(journey()))
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2  # visible before close
    await exporter.close()


async def test_jsonl_rotates_keeping_n_files(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    exporter = JsonlExporter(JsonlSpec(path=path, max_bytes=2000, keep=2))
    batches = [result_points(journey(run_id=f"r{i:03d}")) for i in range(40)]
    for batch in batches:
        await exporter.write(batch)
    await exporter.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["r.jsonl", "r.jsonl.1", "r.jsonl.2"]
    for f in files[1:]:
        assert 2000 <= (tmp_path / f).stat().st_size < 2000 + 1500
    # Newest last: current file, then .1, then .2 hold consecutive, whole batches.
    kept = [json.loads(line) for f in ("r.jsonl.2", "r.jsonl.1", "r.jsonl")
            for line in (tmp_path / f).read_text(encoding="utf-8").splitlines()]
    expected = [p.as_dict() for b in batches for p in b]
    assert kept == expected[len(expected) - len(kept):]
    assert kept[-1]["fields"]["run_id"] == "r039"


async def test_jsonl_to_stdout(capsys: pytest.CaptureFixture[str], load: LoadContext,
                               tmp_path: Path) -> None:
    spec = JsonlType.from_config(node({"type": "jsonl", "path": "-"}), Problems(), load)
    exporter = JsonlType.create(spec, env(tmp_path))
    points = result_points(journey())
    await exporter.write(points)
    await exporter.close()
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == [p.as_dict() for p in points]
    assert not (tmp_path / "state").exists()


# ---------------------------------------------------------------------------------------------
# junit
# ---------------------------------------------------------------------------------------------

NASTY = 'expected <b>"Paid" & done\x1b[0m'


def junit_results() -> list[Any]:
    shot, trace = "/state/artifacts/checkout/r2/pay.png", "/state/artifacts/checkout/r2/trace.zip"
    return [
        journey("checkout", [passed("login", 120.0), passed("pay", 80.4)], run_id="r1", start_ms=T0_MS),
        journey("checkout", [passed("login", 120.0),
                             failed("pay", ErrorClass.BROWSER, NASTY, probe="browser",
                                    artifacts={"screenshot": shot, "trace": trace}),
                             skipped("logout")], run_id="r2", start_ms=T0_MS + 1000),
        journey("signup", [failed("form", ErrorClass.TIMEOUT, "no answer in 10s")], region="us-east",
                run_id="r3", attempt=1, final=False, start_ms=T0_MS + 2000),
        journey("signup", [passed("form", 300.0)], region="us-east", run_id="r3", attempt=2,
                start_ms=T0_MS + 3000),
        journey("billing", [degraded("invoices", 1500.0)], run_id="r4", start_ms=T0_MS + 4000),
        journey("support", [skipped("ticket")], outcome=Outcome.SKIPPED, run_id="r5",
                start_ms=T0_MS + 5000, error_message="not in this shard"),
    ]


def check_suite(path: Path) -> None:
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite"
    assert {k: suite.get(k) for k in ("name", "tests", "failures", "errors", "skipped", "time")} == {
        "name": "qos-agent", "tests": "5", "failures": "1", "errors": "0", "skipped": "1",
        "time": "2.170"}
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("time")) for c in cases] == [
        ("qos-agent.eu-west", "checkout", "0.200"),
        ("qos-agent.eu-west", "checkout", "0.170"),
        ("qos-agent.us-east", "signup", "0.300"),
        ("qos-agent.eu-west", "billing", "1.500"),
        ("qos-agent.eu-west", "support", "0.000"),
    ]
    assert len(cases[0]) == 0  # a plain pass: no children
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("type") == "browser"
    assert failure.get("message") == "step 'pay' failed: browser: expected <b>\"Paid\" & done\ufffd[0m"
    assert failure.text == "\n".join([
        "✓ login 120 ms",
        "✗ pay browser: expected <b>\"Paid\" & done\ufffd[0m",
        "- logout skipped",
        "[[ATTACHMENT|/state/artifacts/checkout/r2/pay.png]]",
        "[[ATTACHMENT|/state/artifacts/checkout/r2/trace.zip]]",
    ])
    flaky = cases[2]
    assert flaky.find("failure") is None
    assert flaky.findtext("system-out") == "flaky: passed on attempt 2"
    assert cases[3].findtext("system-out") == "degraded: slower than its latency objective"
    skipped_el = cases[4].find("skipped")
    assert skipped_el is not None and skipped_el.get("message") == "not in this shard"


async def test_junit_exporter_writes_at_close(tmp_path: Path, load: LoadContext) -> None:
    problems = Problems()
    spec = JunitType.from_config(node({"type": "junit", "path": "reports/junit.xml"}), problems, load)
    assert not problems
    assert spec == JunitSpec(path=load.config_dir / "reports/junit.xml")
    exporter = JunitType.create(spec, env(tmp_path))
    points = points_of(junit_results())
    # Split so journey points and their steps arrive in different batches; other points are ignored.
    await exporter.write(points[:2])
    await exporter.write([*points[2:], disruption("open", T0_MS)])
    assert not spec.path.exists()  # written at close only
    await exporter.close()
    check_suite(spec.path)
    assert sorted(p.name for p in spec.path.parent.iterdir()) == ["junit.xml"]  # no temp file left
    raw = spec.path.read_text(encoding="utf-8")
    assert "&lt;b&gt;&quot;Paid&quot; &amp; done" in raw  # escaped in the attribute
    assert raw.startswith("<?xml version='1.0' encoding='utf-8'?>")


def write_junit(path: Path, results: list[JourneyResult]) -> None:
    """`check --junit`'s writer: the one JUnit writer, the registry's junit exporter."""
    config = Config(str(path.parent / "journeys.yaml"), AgentConfig(state_dir=str(path.parent)), (), ())
    check.write_junit(config, results, path)


def test_write_junit_for_check(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.xml"
    path.parent.mkdir(parents=True)
    path.write_text("old")  # replaced whole
    write_junit(path, junit_results())
    check_suite(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.xml"]


def test_write_junit_empty_suite(tmp_path: Path) -> None:
    write_junit(tmp_path / "empty.xml", [])
    suite = ET.parse(tmp_path / "empty.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("time")) == ("0", "0", "0.000")


def test_junit_failure_without_a_step(tmp_path: Path) -> None:
    r = journey("checkout", [passed("login")], outcome=Outcome.FAILED, error=ErrorClass.TIMEOUT,
                error_message="run exceeded 60s")
    write_junit(tmp_path / "j.xml", [r])
    failure = ET.parse(tmp_path / "j.xml").getroot().find("testcase/failure")
    assert failure is not None
    assert (failure.get("message"), failure.get("type")) == ("journey failed: timeout: run exceeded 60s",
                                                             "timeout")


async def test_junit_max_cases_keeps_the_newest(tmp_path: Path) -> None:
    exporter = JunitExporter(JunitSpec(path=tmp_path / "k.xml", max_cases=3))
    for i in range(5):
        await exporter.write(result_points(journey(f"j{i}", start_ms=T0_MS + i)))
    await exporter.close()
    names = [c.get("name") for c in ET.parse(tmp_path / "k.xml").getroot().findall("testcase")]
    assert names == ["j2", "j3", "j4"]  # the newest kept
