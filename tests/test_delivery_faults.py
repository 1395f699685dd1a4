"""Delivery under faults, proven by a receiver that counts every record it got by id (repeats included).

Within a process's life a record the destination accepted is never sent again, even when another part
of its batch failed; every counter counts a record once, so made = delivered + spooled + queued +
dropped + dead_lettered after any sequence of faults; across `kill -9` delivery is at least once and
the repeat carries the same id (the point's series and time), so a receiver can drop it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from qos_agent.delivery.pipeline import Pipeline
from qos_agent.model import Point
from qos_agent.plugins.sinks import SinkStats
from tests.support.collector import Collector, CollectorSink, CollectorSpec, record_id
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[1]
TAGS = (("agent", "t1"), ("journey", "checkout"), ("region", "test"))


def points(n: int, start: int = 0, bad: frozenset[int] = frozenset()) -> list[Point]:
    """n journey points with distinct times; those at `bad` carry a value the collector refuses for good."""
    return [Point("journey", TAGS, (("duration_ms", "bad" if i in bad else 10.0 + i % 9), ("success", True)),
                  1_700_000_000_000 + i) for i in range(start, start + n)]


def ids(pts: list[Point]) -> set[str]:
    sink = CollectorSink(CollectorSpec("http://127.0.0.1:1/x"))
    return {record_id(r) for r in sink.encode(pts)}


async def pipeline_to(collector: Collector, state: Path, **options: object) -> Pipeline:
    pipeline = Pipeline.of([CollectorSink(CollectorSpec(collector.url))], state)
    durable = pipeline.sinks[0].durable
    assert durable is not None
    durable.with_options(**{"flush_interval_s": 0.05, "backoff_base_s": 0.02, "backoff_cap_s": 0.1, **options})
    pipeline.start()
    return pipeline


def conserved(made: int, st: SinkStats) -> bool:
    return made == st.delivered + st.spooled + st.queued + st.dropped + st.dead_lettered


async def test_a_partly_failed_batch_retries_only_the_part_that_failed(tmp_path: Path) -> None:
    collector = Collector()
    await collector.start()
    pts = points(20)
    collector.fail_once = ids(pts[10:])  # the second of the batch's two parts fails once
    pipeline = await pipeline_to(collector, tmp_path, batch_size=20, parallel=2, flush_interval_s=0.3)
    try:
        pipeline.submit_points(pts)
        await until(lambda: pipeline.total().delivered == 20, limit_s=20, every=0.02)
        st = pipeline.total()
    finally:
        await pipeline.close()
        await collector.stop()
    assert collector.duplicates() == {}  # the part that was accepted was not sent again
    assert set(collector.ids()) == ids(pts)
    assert (st.delivered, st.failed_sends, st.dead_lettered, st.spooled) == (20, 1, 0, 0)


async def test_a_dead_letter_in_one_part_and_a_retry_in_the_other_count_once(tmp_path: Path) -> None:
    collector = Collector()
    await collector.start()
    pts = points(20, bad=frozenset({3}))
    collector.fail_once = ids(pts[10:])
    collector.fail_after_s = 0.5  # the first part is settled (one dead letter) before the second fails
    pipeline = await pipeline_to(collector, tmp_path, batch_size=20, parallel=2, flush_interval_s=0.3)
    try:
        pipeline.submit_points(pts)
        await until(lambda: pipeline.total().delivered == 19, limit_s=20, every=0.02)
        await asyncio.sleep(0.3)  # nothing more may come
        st = pipeline.total()
        dead = await pipeline.sinks[0].durable.dead_letters()  # type: ignore[union-attr]
    finally:
        await pipeline.close()
        await collector.stop()
    assert (st.delivered, st.dead_lettered, st.spooled, st.dropped) == (19, 1, 0, 0)
    assert len(dead) == 1 and '"bad"' in dead[0][0]
    assert collector.duplicates() == {} and set(collector.ids()) == ids(pts[:3] + pts[4:])


async def test_every_record_counted_once_after_a_seeded_sequence_of_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("QOS_FAULT_SEED", "2026"))
    print(f"fault sequence seed {seed} (QOS_FAULT_SEED={seed} replays it)")
    rng = random.Random(seed)
    collector = Collector()
    await collector.start()
    pipeline = await pipeline_to(collector, tmp_path, batch_size=16, parallel=3, max_spool_mb=0.02)
    sink = pipeline.sinks[0]
    made, checks = 0, 0
    try:
        for step in range(40):
            fault = rng.choice(("none", "none", "down", "up", "partial", "bad", "slow"))
            collector.down = {"down": True, "up": False}.get(fault, collector.down)
            collector.slow_s = 0.05 if fault == "slow" else 0.0
            n = rng.randint(1, 120)
            bad = frozenset(made + i for i in range(n) if fault == "bad" and rng.random() < 0.1)
            pts = points(n, made, bad)
            if fault == "partial":
                collector.fail_once |= {i for i in ids(pts) if rng.random() < 0.3}
            pipeline.submit_points(pts)
            made += n
            await asyncio.wait_for(sink.queue.join(), 10)  # stored (or dropped): nothing between two owners
            await asyncio.sleep(rng.random() * 0.1)
            st = pipeline.total()
            assert conserved(made, st), (seed, step, fault, made, st)
            checks += 1
        collector.down, collector.fail_once, collector.slow_s = False, set(), 0.0
        await until(lambda: pipeline.total().spooled == 0, 30, every=0.02)
        st = pipeline.total()
    finally:
        await pipeline.close()
        await collector.stop()
    assert conserved(made, st) and checks == 40, (seed, made, st)
    assert collector.duplicates() == {}, seed  # nothing accepted was sent again
    assert st.delivered == len(collector.ids()) == len(collector.records), seed
    assert st.dead_lettered > 0 and st.failed_sends > 0, (seed, st)  # the faults did happen
    assert st.dropped_by_cause.keys() <= {"spool_full"}, st


_WRITER = """
import asyncio, sys
from pathlib import Path
from qos_agent.delivery.durable import DurableSink
from tests.support.collector import CollectorSink, CollectorSpec
from tests.test_delivery_faults import points

async def main():
    sink = DurableSink(CollectorSink(CollectorSpec(sys.argv[2])), Path(sys.argv[1]))
    sink.with_options(batch_size=100, parallel=1, flush_interval_s=0.0)
    await sink.write(points(300))
    print("written", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_kill_9_during_a_send_delivers_at_least_once_and_the_repeat_has_the_same_id(tmp_path: Path) -> None:
    collector = Collector()
    await collector.start()
    collector.slow_s = 30.0  # the receiver takes the first batch, then is slow to say so
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(tmp_path), collector.url, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert writer.stdout is not None
        assert (await asyncio.wait_for(writer.stdout.readline(), 30)).strip() == b"written"
        # the first batch is in, its answer not out
        await until(lambda: len(collector.records) == 100, limit_s=20, every=0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        await asyncio.wait_for(writer.wait(), 10)
    collector.slow_s = 0.0
    pipeline = await pipeline_to(collector, tmp_path, batch_size=100, parallel=1)
    try:
        assert pipeline.total().spooled == 300  # the batch under way was never settled: it is sent again
        await until(lambda: pipeline.total().spooled == 0, limit_s=20, every=0.02)
        st = pipeline.total()
    finally:
        await pipeline.close()
        await collector.stop()
    every = ids(points(300))
    assert set(collector.ids()) == every and st.delivered == 300  # at least once
    repeats = collector.duplicates()
    assert len(repeats) == 100 and set(repeats.values()) == {2}  # at most the batch under way, by its ids
    assert len(collector.records) - sum(n - 1 for n in repeats.values()) == len(every)  # dropping repeats by id
