"""A damaged spool file (16 KB of garbage in the middle, or a truncated tail) is salvaged row by row:
every readable record is delivered to a real HTTP collector, the lost ones are counted (log line and
dropped[corrupt]); moved-aside files and dead_letter rows are bounded, the oldest pruned first."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qos_agent.delivery.bounds import KEEP_ASIDE
from qos_agent.delivery.deliver import Delivery
from qos_agent.delivery.store import Store
from qos_agent.plugins.sinks import DeliveryOptions, SinkStats
from tests.support.collector import Collector, CollectorSink, CollectorSpec

N = 3000
OPTIONS = DeliveryOptions(batch_size=500, flush_interval_s=0.05, parallel=1, backoff_base_s=0.01, backoff_cap_s=0.05)


def records(n: int = N) -> list[str]:
    return [f'{{"i": {i}, "pad": "{"x" * 80}"}}' for i in range(n)]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = Collector()
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def spooled_file(path: Path, n: int = N) -> None:
    """A spool file holding n records, closed (checkpointed: no -wal left)."""
    store = Store(path, name="t")
    await store.put(records(n))
    await store.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


async def deliver_all(path: Path, collector: Collector, caplog: pytest.LogCaptureFixture) -> tuple[SinkStats, str]:
    """Open the (damaged) file, deliver to the collector until quiet; (stats, the salvage log line)."""
    with caplog.at_level(logging.ERROR, logger="qos_agent.delivery"):
        store = Store(path, name="t")
    (line,) = [r.getMessage() for r in caplog.records if "salvaged" in r.getMessage()]
    sink = CollectorSink(CollectorSpec(collector.url))
    delivery = Delivery(store, sink.send, OPTIONS, name="t")
    delivery.start()
    deadline = time.monotonic() + 15
    while store.depth > 0:
        assert time.monotonic() < deadline, "not delivered in time"
        await asyncio.sleep(0.02)
    await delivery.close(1.0)
    await store.close()
    await sink.close()
    return store.stats().plus(delivery.stats()), line


async def test_garbage_in_the_middle_loses_only_the_damaged_pages(tmp_path: Path, collector: Collector,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t.db"
    await spooled_file(path)
    data = bytearray(path.read_bytes())
    mid = (len(data) // 2) // 4096 * 4096
    data[mid:mid + 16384] = bytes((i * 131 + 7) % 256 for i in range(16384))  # 16 KB of garbage, 4 pages
    path.write_bytes(bytes(data))

    stats, line = await deliver_all(path, collector, caplog)
    got = [int(re.search(r'"i": (\d+)', r).group(1)) for r in collector.records]  # type: ignore[union-attr]
    assert got == sorted(got) and len(set(got)) == len(got)  # in order, once each
    lost = N - len(got)
    assert 0 < lost <= 5 * (4096 // 100 + 1)  # at most the rows of the 4 clobbered pages (+1 for a seam)
    assert stats.delivered == len(got) and stats.dropped_by_cause == {"corrupt": lost}
    assert f"salvaged {len(got)} of {N} records" in line and f"{lost} lost" in line
    assert list(tmp_path.glob("t.db.corrupt-*"))  # kept for forensics
    assert got[0] == 0 and got[-1] == N - 1  # both sides of the damage delivered


async def test_a_truncated_file_delivers_what_it_still_holds(tmp_path: Path, collector: Collector,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t.db"
    await spooled_file(path)
    data = path.read_bytes()
    cut = int(len(data) * 0.6) // 4096 * 4096
    path.write_bytes(data[:cut])

    stats, line = await deliver_all(path, collector, caplog)
    got = [int(re.search(r'"i": (\d+)', r).group(1)) for r in collector.records]  # type: ignore[union-attr]
    assert got == list(range(len(got))) and N * 0.4 < len(got) < N * 0.7  # the head, in order
    lost = stats.dropped_by_cause["corrupt"]
    assert stats.delivered == len(got)
    assert abs(len(got) + lost - N) <= N * 0.1, (len(got), lost)  # the tail's rows, estimated from pages
    assert f"salvaged {len(got)} of about {len(got) + lost} records" in line, line


async def test_damaged_files_are_bounded_oldest_pruned_first(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    made: list[str] = []
    pruned = []
    for _ in range(KEEP_ASIDE + 2):
        before = {p.name for p in tmp_path.glob("t.db.corrupt-*")}
        path.write_bytes(b"garbage, not a database " * 400)
        store = Store(path, name="t")
        made += sorted({p.name for p in tmp_path.glob("t.db.corrupt-*")} - before)
        pruned.append(store.aside_pruned)
        await store.close()
        await asyncio.sleep(0.01)  # distinct millisecond stamps
    assert len(made) == KEEP_ASIDE + 2
    assert {p.name for p in tmp_path.glob("t.db.corrupt-*")} == set(made[-KEEP_ASIDE:])  # the newest kept
    assert pruned == [0] * KEEP_ASIDE + [1, 1]


async def test_damaged_files_count_against_their_share_of_max_spool_mb(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    stamps = []
    for _ in range(2):
        path.write_bytes(b"x" * 200_000)  # 0.2 MB each; the cap below is 25% of 1 MB
        store = Store(path, name="t", max_spool_mb=1.0)
        stamps.append(store.aside_pruned)
        await store.close()
        await asyncio.sleep(0.01)
    (kept,) = tmp_path.glob("t.db.corrupt-*")  # the older one went: the two would exceed 0.25 MB
    assert stamps == [0, 1]
    assert kept.stat().st_size == 200_000


async def test_dead_letter_rows_are_bounded_oldest_pruned_first(tmp_path: Path, collector: Collector) -> None:
    store = Store(tmp_path / "t.db", name="t", max_spool_mb=0.1)  # dead_letter cap: ~10 KB
    sink = CollectorSink(CollectorSpec(collector.url))
    delivery = Delivery(store, sink.send, OPTIONS, name="t")
    delivery.start()
    for k in range(4):  # the collector refuses '"bad"' records for good: 4 x 50 x ~100 B dead letters
        await store.put([f'{{"bad": {k * 50 + i}, "pad": "{"y" * 80}"}}' for i in range(50)])
        deadline = time.monotonic() + 10
        while store.stats().dead_lettered < (k + 1) * 50:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    await delivery.close(1.0)
    dead = await store.dead_letters()
    await store.close()
    await sink.close()
    assert store.stats().dead_lettered == 200 and store.dead_pruned > 0
    assert len(dead) + store.dead_pruned == 200
    assert sum(len(r) + len(m) for r, m in dead) <= 0.1 * 0.1 * 2**20
    first = int(re.search(r'"bad": (\d+)', dead[0][0]).group(1))  # type: ignore[union-attr]
    assert first == store.dead_pruned  # the oldest went first; the newest are kept
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT count(*) FROM dead_letter").fetchone()[0] == len(dead)
