"""A sink written only as encode + send gets durability from the core: outage, kill -9, dead letters.

The sink (tests/support/collector.py) has no spool and no retry of its own; the pipeline wraps it
with the durable store and the delivery loop, exactly as it wraps InfluxDB.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from qos_agent.delivery.pipeline import Pipeline
from qos_agent.errors import SetupError
from qos_agent.model import Point
from tests.support.collector import Collector, CollectorSink, CollectorSpec
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[1]


def points(n: int, start: int = 0, measurement: str = "journey") -> list[Point]:
    tags = (("agent", "t1"), ("journey", "checkout"), ("region", "test"))
    return [Point(measurement, tags, (("duration_ms", 10.0 + i % 9), ("success", True)), 1_700_000_000_000 + i)
            for i in range(start, start + n)]


async def test_outage_then_recovery_delivers_exactly_everything(tmp_path: Path) -> None:
    collector = Collector()
    await collector.start()
    pipeline = Pipeline.of([CollectorSink(CollectorSpec(collector.url))], tmp_path)
    pipeline.start()
    try:
        pipeline.submit_points(points(100))
        await until(lambda: collector.distinct() == 100, limit_s=20)
        await until(lambda: pipeline.total().delivered == 100, limit_s=20)
        await collector.stop()
        failed_before = pipeline.total().failed_sends
        for i in range(100, 1000, 100):
            pipeline.submit_points(points(100, i))
            await asyncio.sleep(0.1)
        await until(lambda: pipeline.total().spooled == 900, limit_s=20)
        await until(lambda: pipeline.total().failed_sends > failed_before, limit_s=20)
        down = pipeline.total()
        assert down.delivered == 100 and down.dropped == 0  # flat during the outage, nothing lost
        assert "cannot reach" in down.last_error
        await collector.start()  # same port
        await until(lambda: pipeline.total().spooled == 0, limit_s=20)
        assert pipeline.total().delivered == 1000
    finally:
        await pipeline.close()
        await collector.stop()
    assert collector.distinct() == 1000 and len(collector.records) == 1000


async def test_refused_records_are_dead_lettered_while_the_rest_flow(tmp_path: Path) -> None:
    collector = Collector()
    await collector.start()
    pipeline = Pipeline.of([CollectorSink(CollectorSpec(collector.url))], tmp_path)
    pipeline.start()
    try:
        good = points(300)
        bad = Point("journey", good[0].tags, (("duration_ms", "bad"),), good[0].time_ms + 10_000)
        pipeline.submit_points([*good[:150], bad, *good[150:]])
        await until(lambda: pipeline.total().spooled == 0 and pipeline.total().delivered == 300, limit_s=20)
        stats = pipeline.total()
        assert stats.dead_lettered == 1 and "record refused" in stats.last_error
    finally:
        await pipeline.close()
        await collector.stop()
    assert collector.distinct() == 300


_WRITER = """
import asyncio, sys
from pathlib import Path
from qos_agent.delivery.durable import DurableSink
from tests.support.collector import CollectorSink, CollectorSpec
from tests.test_delivery_sink import points

async def main():
    sink = DurableSink(CollectorSink(CollectorSpec(sys.argv[2])), Path(sys.argv[1]))
    n = int(sys.argv[3])
    for i in range(0, n, 50):
        await sink.write(points(50, i))
    print("written", sink.stats().spooled, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_kill_9_while_the_destination_is_down_then_everything_is_delivered(tmp_path: Path) -> None:
    collector = Collector()
    await collector.start()
    await collector.stop()  # a port that refuses, for now
    state = tmp_path / "state"
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(state), collector.url, "1500", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert writer.stdout is not None
        said = await asyncio.wait_for(writer.stdout.readline(), 30)  # every point committed, none delivered
    finally:
        writer.kill()  # SIGKILL: no close, no flush
        await asyncio.wait_for(writer.wait(), 10)
    assert said.split() == [b"written", b"1500"] and writer.returncode == -signal.SIGKILL
    assert (state / "spool" / "collector.db").exists()
    await collector.start()
    pipeline = Pipeline.of([CollectorSink(CollectorSpec(collector.url))], state)
    assert pipeline.total().spooled == 1500  # found on disk before any new point
    pipeline.start()
    try:
        await until(lambda: pipeline.total().spooled == 0, limit_s=20)
        assert pipeline.total().delivered == 1500
    finally:
        await pipeline.close()
        await collector.stop()
    assert collector.distinct() == 1500 and len(collector.records) == 1500


def test_two_sinks_on_one_spool_file_are_refused(tmp_path: Path) -> None:
    spec = CollectorSpec("http://127.0.0.1:1/ingest", name="same")
    with pytest.raises(SetupError, match=r"collector#0 and collector#1 would share the spool file spool/same.db"):
        Pipeline.of([CollectorSink(spec), CollectorSink(spec)], tmp_path)
