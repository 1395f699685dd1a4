"""The whole agent against real influxd: an outage loses nothing, nor does kill -9 while it is down."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.cli import start
from tests.support.demo import DemoProcess
from tests.support.influx import InfluxServer

pytestmark = pytest.mark.influx

JOURNEYS = 30  # each every 1 s: 30 journey runs per second


def config(url: str, influx: str, regions: str = "") -> str:
    journeys = "".join(
        f"""
  - name: j{i:02d}
    {regions}
    steps:
      - name: fast
        http: {{url: "{url}/fast"}}
        expect: {{status: 200}}""" for i in range(JOURNEYS))
    return f"""\
version: 1
agent: {{state_dir: state, interval: 1s, name: outage-agent, listen: "127.0.0.1:0"}}
exporters:
  - type: sqlite
  - type: influxdb
    url: {influx}
    database: qos
journeys:{journeys}
"""


def journey_runs(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM points WHERE measurement = 'journey'").fetchone()[0])


def spooled(state: Path) -> int:
    total = 0
    for spool in (state / "spool").glob("*.db"):
        with sqlite3.connect(spool) as conn:
            total += int(conn.execute("SELECT count(*) FROM spool WHERE line LIKE 'journey,%'").fetchone()[0])
    return total


def spooled_safe(state: Path) -> int:
    """spooled(), or 0 while the agent has not made its spool yet."""
    try:
        return spooled(state)
    except sqlite3.Error:
        return 0


async def test_outage_of_30s_loses_no_point(tmp_path: Path, influxd: InfluxServer) -> None:
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        path.write_text(config(demo.url, influxd.url))
        agent = start("run", str(path), "--duration", "50s", cwd=tmp_path)
        time.sleep(5)
        influxd.stop()  # InfluxDB away for 30 s while ~30 runs/s go on
        time.sleep(30)
        assert spooled(tmp_path / "state") > 500  # the points wait on disk
        influxd.start()
        _, err = agent.communicate(timeout=90)
    assert agent.returncode == 0, err
    made = journey_runs(tmp_path / "state" / "qos-results.db")
    assert made >= 20 * 45  # at least 20 journey runs per second
    stored = await influxd.wait_count("journey", "qos", made, limit_s=30)
    print(f"\noutage: {made} runs made, {stored} journey points in InfluxDB after a 30 s outage")
    assert stored == made
    assert spooled(tmp_path / "state") == 0


async def test_kill_9_while_influxdb_is_down_then_restart_delivers_everything(
        tmp_path: Path, influxd: InfluxServer) -> None:
    path = tmp_path / "journeys.yaml"
    influxd.stop()
    with DemoProcess() as demo:
        path.write_text(config(demo.url, influxd.url, regions="regions: [here]"))
        agent = start("run", str(path), "--region", "here", cwd=tmp_path)
        deadline = time.monotonic() + 60  # kill once enough is spooled (a loaded machine starts slowly)
        while time.monotonic() < deadline and agent.poll() is None and spooled_safe(tmp_path / "state") <= 80:
            time.sleep(0.5)
        agent.send_signal(signal.SIGKILL)
        agent.communicate(timeout=30)
    waiting = spooled(tmp_path / "state")
    made = journey_runs(tmp_path / "state" / "qos-results.db")
    assert waiting > 60 and waiting >= made - 2 * JOURNEYS  # at most the batch in flight at the kill
    influxd.start()
    # A restarted agent with no journeys of its own (another region) only replays what was left.
    replay = start("run", str(path), "--region", "elsewhere", "--duration", "4s", cwd=tmp_path)
    _, err = replay.communicate(timeout=60)
    assert replay.returncode == 0, err
    stored = await influxd.wait_count("journey", "qos", waiting, limit_s=20)
    print(f"\nkill -9: {made} runs in the local store, {waiting} spooled, {stored} in InfluxDB after restart")
    assert stored == waiting
    assert spooled(tmp_path / "state") == 0


async def test_sample_journeys_into_real_influxd(tmp_path: Path, influxd: InfluxServer) -> None:
    """The sample journeys.yaml, as shipped, plus an influxdb exporter: every run reaches InfluxDB."""
    from tests.support.cli import ROOT

    path = tmp_path / "journeys.yaml"
    sample = (ROOT / "journeys.yaml").read_text().replace("interval: 15s", "interval: 2s")
    shutil.copytree(ROOT / "steps", tmp_path / "steps")  # the sample's script step, beside it
    path.write_text(sample + f"\nexporters:\n  - type: sqlite\n  - type: influxdb\n    url: {influxd.url}\n"
                             "    database: qos\n")
    with DemoProcess() as demo:
        agent = start("run", str(path), "--duration", "8s", cwd=tmp_path,
                      env={"SHOP_URL": demo.url, "QOS_LISTEN": "127.0.0.1:0"})
        _, err = agent.communicate(timeout=90)
    assert agent.returncode == 0, err
    made = journey_runs(tmp_path / ".qos-agent" / "qos-results.db")
    assert made >= 12
    assert await influxd.wait_count("journey", "qos", made, limit_s=20) == made
    rows = influxd.rows('SELECT "success", "steps" FROM "journey" GROUP BY "journey"', "qos")
    assert {r["journey"] for r in rows} == {"onboarding", "billing", "support", "checkout", "browser_checkout",
                                            "scripted_checkout", "certificate", "uptime"}
    assert all(r["success"] is True for r in rows)
    steps = influxd.rows('SELECT count("duration_ms") FROM "step" GROUP BY "step", "probe"', "qos")
    assert {(r["step"], r["probe"]) for r in steps} >= {("pay", "browser"), ("pay", "http"), ("health", "http")}
