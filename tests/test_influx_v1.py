"""The v1 exporter against a real influxd: exact round trip, outage, kill -9, faults, dead letters, auth."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qos_agent.model import Point
from tests.support.influx import (
    FaultProxy,
    InfluxServer,
    influxd,
    journey_points,
    make_exporter,
    needs_influxd,
)
from tests.support.waiting import until

pytestmark = [needs_influxd, pytest.mark.influx]
__all__ = ["influxd"]  # the fixture, imported for pytest
ROOT = Path(__file__).resolve().parents[1]


async def test_round_trip_exact_tags_and_values(influxd: InfluxServer, tmp_path: Path) -> None:
    exp = make_exporter(tmp_path, {"url": influxd.url, "database": "qos"})
    t = int(time.time() * 1000)
    nasty = {"journey": "sign up, pay=now", "step": 'say "hi"', "region": "eu west", "agent": "C:\\agent"}
    fields = {"duration_ms": 12.5, "success": True, "steps": 3, "error": "",
              "error_message": 'line one\nline "two", a=b \\ back', "url": "http://x/a b?c=d,e"}
    await exp.write([Point("step", tuple(sorted(nasty.items())), tuple(fields.items()), t),
                     Point("step", (("journey", "nl"), ("step", "a\nb")), (("duration_ms", 1.0),), t + 1)])
    await exp.close()
    assert exp.stats.exported == 2 and exp.stats.depth == 0
    rows = influxd.rows('SELECT * FROM "step" ORDER BY time', "qos")
    assert rows[0] == {**nasty, **fields, "time": t}
    assert isinstance(rows[0]["steps"], int) and isinstance(rows[0]["duration_ms"], float)
    assert rows[1]["step"] == "a\\nb"  # a newline in a tag value cannot be stored: it becomes \n
    types = influxd.rows('SHOW FIELD KEYS FROM "step"', "qos")
    assert {r["fieldKey"]: r["fieldType"] for r in types}["steps"] == "integer"


async def test_outage_loses_nothing(influxd: InfluxServer, tmp_path: Path) -> None:
    exp = make_exporter(tmp_path, {"url": influxd.url, "database": "qos"})
    points = journey_points(2000)
    await exp.write(points[:100])
    assert await influxd.wait_count("journey", "qos", 100) == 100
    influxd.stop()
    for i in range(100, 2000, 100):  # ~2 s of results while influxd is away
        await exp.write(points[i:i + 100])
        await asyncio.sleep(0.1)
    assert exp.stats.depth == 1900 and exp.stats.export_errors > 0
    influxd.start()  # same port, same data dir
    await until(lambda: exp.stats.depth == 0, limit_s=20)
    await exp.close()
    assert influxd.count("journey", "qos") == 2000
    assert exp.stats.exported == 2000


_WRITER = """
import asyncio, sys
from pathlib import Path
from tests.support.influx import journey_points, make_exporter

async def main():
    exp = make_exporter(Path(sys.argv[1]), {"url": sys.argv[2], "database": "qos"}, backoff=5.0)
    points = journey_points(int(sys.argv[3]))
    for i in range(0, len(points), 50):
        await exp.write(points[i:i + 50])
    print("written", exp.stats.depth, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_kill_9_while_influx_is_down_then_everything_is_delivered(influxd: InfluxServer,
                                                                         tmp_path: Path) -> None:
    influxd.stop()
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(state), influxd.url, "1500"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.split() == [b"written", b"1500"], proc.stderr.read() if proc.stderr else line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    influxd.start()
    exp = make_exporter(state, {"url": influxd.url, "database": "qos"})
    assert exp.stats.depth == 1500
    await until(lambda: exp.stats.depth == 0, limit_s=20)
    await exp.close()
    assert influxd.count("journey", "qos") == 1500


async def test_faults_are_retried_and_delivered(influxd: InfluxServer, tmp_path: Path) -> None:
    proxy = FaultProxy(influxd.url)
    await proxy.start()
    try:
        proxy.faults = [("status", 500, '{"error":"boom"}', {}),
                        ("status", 429, '{"error":"slow down"}', {"Retry-After": "1"}),
                        ("status", 503, "", {}),
                        ("slow", 1.5)]  # longer than the exporter's timeout: a timeout, retried
        exp = make_exporter(tmp_path, {"url": proxy.url, "database": "qos", "timeout": "700ms"}, parallel=1)
        t0 = time.monotonic()
        await exp.write(journey_points(300))
        await until(lambda: exp.stats.depth == 0, limit_s=20)
        assert time.monotonic() - t0 >= 1.0  # Retry-After: 1 was honoured
        await exp.close()
        assert [s for p, s in proxy.requests if p == "/write"][:3] == [500, 429, 503]
        assert exp.stats.export_errors == 4 and exp.stats.dead_letter == 0
        assert influxd.count("journey", "qos") == 300
    finally:
        await proxy.close()


async def test_field_type_conflict_is_dead_lettered_while_other_points_flow(influxd: InfluxServer,
                                                                            tmp_path: Path) -> None:
    exp = make_exporter(tmp_path, {"url": influxd.url, "database": "qos"})
    good = journey_points(400)
    await exp.write(good[:10])
    await until(lambda: exp.stats.exported == 10, limit_s=20)
    bad = Point("journey", good[0].tags, (("duration_ms", "slow"),), good[0].time_ms + 10_000)
    await exp.write([*good[10:200], bad, *good[200:]])
    await until(lambda: exp.stats.depth == 0, limit_s=20)
    dead = await exp.spool.dead_letters()
    await exp.close()
    assert exp.stats.dead_letter == 1 and exp.stats.exported == 400
    assert len(dead) == 1 and 'duration_ms="slow"' in dead[0][0] and "conflict" in dead[0][1]
    assert await influxd.wait_count("journey", "qos", 400, limit_s=10) == 400


async def test_missing_database_is_one_clear_line_and_points_wait(influxd: InfluxServer, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    exp = make_exporter(tmp_path, {"url": influxd.url, "database": "absent", "create_database": False}, 0.05)
    with caplog.at_level(logging.INFO):
        await exp.write(journey_points(50))
        await until(lambda: exp.stats.export_errors >= 3, limit_s=20)
        assert exp.stats.depth == 50
        influxd.query('CREATE DATABASE "absent"')  # the operator follows the advice
        await until(lambda: exp.stats.depth == 0, limit_s=20)
    await exp.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and 'CREATE DATABASE "absent"' in errors[0] and "create_database: true" in errors[0]
    assert influxd.count("journey", "absent") == 50


async def test_basic_auth_and_a_wrong_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "authd"
    root.mkdir()
    server = InfluxServer(root, auth=True)
    server.start()
    try:
        server.query("CREATE USER admin WITH PASSWORD 's3cret' WITH ALL PRIVILEGES")
        wrong = make_exporter(tmp_path / "w", {"url": server.url, "database": "qos", "username": "admin",
                                               "password": "nope"})
        with caplog.at_level(logging.ERROR):
            await wrong.write(journey_points(5))
            await until(lambda: wrong.stats.export_errors >= 2, limit_s=20)
        await wrong.close()
        assert wrong.stats.depth == 5 and "401" in wrong.stats.last_error
        msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(msgs) == 1 and "check username and password" in msgs[0]
        right = make_exporter(tmp_path / "w", {"url": server.url, "database": "qos", "username": "admin",
                                               "password": "s3cret"})
        await until(lambda: right.stats.depth == 0, limit_s=20)  # the same spool: the 5 waiting points go now
        await right.close()
        rows = server.query('SELECT count("duration_ms") FROM "journey"', "qos", "admin", "s3cret")
        assert rows["results"][0]["series"][0]["values"][0][1] == 5
    finally:
        server.stop()
