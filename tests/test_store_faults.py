"""The delivery layer on a sick disk, with the real agent process and real influxd: a state_dir
filesystem that fills up and empties again (losses counted as dropped[disk_full], delivery resumes
by itself, the counts add up), and a read-only state_dir at start (one line, exit code, no traceback).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from qos_agent.delivery.deliver import Delivery
from qos_agent.delivery.store import Store
from qos_agent.plugins.sinks import DeliveryOptions, SinkStats
from tests.support import cli, waiting
from tests.support.collector import Collector, CollectorSink, CollectorSpec
from tests.support.influx import InfluxServer, free_port, influxd, needs_influxd
from tests.support.smallfs import fill, tmpfs
from tests.support.waiting import until

__all__ = ["influxd"]  # the fixture, imported for pytest
OPTIONS = DeliveryOptions(batch_size=5000, flush_interval_s=0.05, parallel=1, backoff_base_s=0.01, backoff_cap_s=0.05)

CONFIG = """\
version: 1
agent: {{state_dir: "{state}", region: r1, name: a1, listen: "127.0.0.1:{port}"}}
exporters:
  - {{type: influxdb, url: "{influx}", database: qos, flush_interval: 100ms, timeout: 1s}}
  - {{type: jsonl, path: "{made}"}}
journeys:
  - name: up
    kind: uptime
    interval: 100ms
    timeout: 1s
    steps:
      - name: ping
        http: {{url: "{influx}/ping"}}
        expect: {{status: 204}}
"""


def healthz(port: int) -> dict[str, Any]:
    """The body of /healthz, whatever its status (503 while points are dropped)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:
        return dict(json.loads(e.read()))


def influx_sink(port: int) -> dict[str, Any]:
    body = healthz(port)
    (sink,) = [s for s in body["sinks"] if s["type"] == "influxdb"]
    return dict(sink)


def wait_for(check: Any, limit_s: float, what: str, proc: subprocess.Popen[str]) -> Any:
    """`waiting.wait_for` on the agent `proc`, failing with its stderr: at once if it exits; on a timeout
    (the test is over) after killing it, since a running process's pipe cannot be read to the end.
    An endpoint not up yet (OSError) counts as not yet."""
    def look() -> Any:
        assert proc.poll() is None, f"the agent exited: {proc.communicate()[1][-3000:]}"
        try:
            return check()
        except OSError:
            return None

    def said() -> str:
        proc.kill()
        return f"the agent's stderr: {proc.communicate(timeout=10)[1][-3000:]}"

    return waiting.wait_for(look, limit_s, what, detail=said)


def influx_points(influxd: InfluxServer, measurements: set[str]) -> int:
    """Points InfluxDB holds, over every measurement the agent made (count(*) of the fullest field)."""
    total = 0
    for m in measurements:
        rows = influxd.rows(f'SELECT count(*) FROM "{m}"', "qos")
        total += max((int(v) for k, v in rows[0].items() if k.startswith("count_")), default=0) if rows else 0
    return total


@needs_influxd
def test_disk_full_drops_are_counted_and_delivery_resumes_by_itself(tmp_path: Path, influxd: InfluxServer) -> None:
    port = free_port()
    made = tmp_path / "made.jsonl"  # every point the agent made, on a disk that does not fill
    with tmpfs(tmp_path / "state", size="2m") as state:
        path = tmp_path / "journeys.yaml"
        path.write_text(CONFIG.format(state=state, port=port, influx=influxd.url, made=made))
        proc = cli.start("run", str(path))
        try:
            wait_for(lambda: influx_sink(port)["delivered"] > 0, 30, "a first delivery", proc)
            filler = state / "filler"
            fill(filler)
            full = wait_for(lambda: (s := influx_sink(port))["dropped_by_cause"].get("disk_full", 0) > 20 and s,
                            30, "drops counted as disk_full", proc)
            assert full["delivered"] <= influx_points(influxd, {"journey", "step", "agent"})  # never overcounted
            assert "disk_full" in full["last_error"] or "disk" in full["last_error"]
            status = healthz(port)  # the agent says it is dropping points, and why (issue 23: it said ok)
            assert status["status"] == "unhealthy" and any("(disk_full)" in p for p in status["problems"]), status
            time.sleep(3)  # runs go on while full: writes fail, and so do the delivery loop's acks
            filler.unlink()  # space is back: no restart from here on
            freed_at = influx_points(influxd, {"journey", "step"})
            wait_for(lambda: influx_points(influxd, {"journey", "step"}) > freed_at + 50, 30,
                     "InfluxDB to receive again", proc)
            after = wait_for(lambda: (s := influx_sink(port))["spooled"] < 50 and s, 30, "the spool to drain", proc)
            time.sleep(0.5)
            final = influx_sink(port)
            assert final["dropped"] == after["dropped"]  # nothing lost once the space is back
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
            assert proc.returncode == 0, stderr[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert "Traceback" not in stderr
    assert "cannot rollback" not in stderr
    lines = [json.loads(line) for line in made.read_text().splitlines()]
    measurements = {p["measurement"] for p in lines}
    delivered = influx_points(influxd, measurements)
    dropped = final["dropped_by_cause"]
    assert set(dropped) == {"disk_full"}, dropped
    assert delivered + dropped["disk_full"] == len(lines), (delivered, dropped, len(lines))


def test_read_only_state_dir_with_a_network_sink_is_one_line_and_an_exit_code(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", size="1m", read_only=True) as state:
        path = tmp_path / "journeys.yaml"
        path.write_text(CONFIG.format(state=state, port=0, influx="http://127.0.0.1:9", made=tmp_path / "m.jsonl"))
        r = cli.qos("run", str(path), "--duration", "2s", timeout=60)
    assert r.returncode == 3, r  # a setup problem, as for check (docs/deploy.md)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    # The config's own warnings (this file has no sqlite store for `report`) come first; the failure is one line.
    lines = [line for line in r.stderr.splitlines() if line.strip() and " WARNING " not in line]
    assert len(lines) == 1, r.stderr
    assert str(state) in lines[0] and "writable" in lines[0] and "Read-only file system" in lines[0], lines[0]


async def test_an_ack_that_fails_on_a_full_disk_is_retried_and_delivery_goes_on(tmp_path: Path) -> None:
    """The rows of a sent batch cannot be deleted while the disk is full: the loop must not die (it did:
    the error escaped the task and delivery stopped until a restart); it retries, then counts once."""
    collector = Collector()
    await collector.start()
    with tmpfs(tmp_path / "state", size="4m") as state:
        store = Store(state / "t.db", name="t")
        sink = CollectorSink(CollectorSpec(collector.url))
        delivery = Delivery(store, sink.send, OPTIONS, name="t")

        def stats() -> SinkStats:
            return store.stats().plus(delivery.stats())

        try:
            await store.put([f'{{"i": {i}, "pad": "{"x" * 200}"}}' for i in range(2000)])
            with sqlite3.connect(state / "t.db") as db:  # an empty WAL: the ack's DELETE needs new space
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler = state / "filler"
            fill(filler)
            delivery.start()
            await until(lambda: len(collector.records) == 2000 and stats().last_error.startswith("spool ack failed"),
                        limit_s=15)
            await asyncio.sleep(1.5)  # at least one more retry, still full
            assert stats().delivered == 0 and stats().spooled == 2000  # sent, but not yet out of the store
            assert delivery._task is not None and not delivery._task.done()
            filler.unlink()
            await until(lambda: stats().spooled == 0, limit_s=15)
            assert stats().delivered == 2000 and stats().dropped == 0
            assert len(collector.records) == 2000  # sent once: only the ack was retried
        finally:
            await delivery.close(1.0)
            await store.close()
            await sink.close()
            await collector.stop()
