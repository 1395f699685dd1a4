"""The core's durable store and delivery loop on their own: order, batching, retries, dead letters,
the size bound, replay, corruption.

The sink here is a bare `send(records)` raising qos_agent.errors' delivery errors; the real InfluxDB
and VictoriaMetrics behind it are exercised in test_influx_*.py, a sink made of encode + send in
test_delivery_sink.py.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from qos_agent.delivery.deliver import Delivery, Sender, backoff_delay
from qos_agent.delivery.store import Store
from qos_agent.errors import PermanentError, RetryableError
from qos_agent.plugins.sinks import DeliveryOptions, SinkStats
from tests.support.waiting import until


class Spool:
    """A store and its delivery loop, as DurableSink pairs them, with a bare send (no exporter)."""

    def __init__(self, path: Path, *, batch_size: int = 5000, flush_interval: float = 1.0,
                 max_spool_mb: float = 512.0, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 parallel: int = 2) -> None:
        self.store = Store(path, max_spool_mb=max_spool_mb)
        self.path = self.store.path
        self.options = DeliveryOptions(batch_size=batch_size, flush_interval_s=flush_interval,
                                       max_spool_mb=max_spool_mb, parallel=parallel, backoff_base_s=backoff_base,
                                       backoff_cap_s=backoff_cap)
        self.delivery: Delivery | None = None

    async def put(self, records: Sequence[str]) -> None:
        await self.store.put(records)

    async def dead_letters(self) -> list[tuple[str, str]]:
        return await self.store.dead_letters()

    @property
    def stats(self) -> SinkStats:
        """The account as the sink's owners report it now (the store's part and the loop's)."""
        own = self.store.stats()
        return own if self.delivery is None else own.plus(self.delivery.stats())

    def start(self, send: Sender) -> None:
        self.delivery = Delivery(self.store, send, self.options)
        self.delivery.start()

    async def close(self, timeout: float) -> None:
        if self.delivery is not None:
            await self.delivery.close(timeout)
        else:
            await self.store.flush(timeout)
        await self.store.close()


class Sink:
    """Records what arrives; `fail` is a queue of exceptions to raise first; `reject` refuses lines."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail: list[Exception] = []
        self.reject: str | None = None
        self.calls: list[float] = []

    @property
    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b]

    async def __call__(self, lines: Sequence[str]) -> None:
        self.calls.append(time.monotonic())
        if self.fail:
            raise self.fail.pop(0)
        if self.reject is not None and any(self.reject in line for line in lines):
            raise PermanentError(f"HTTP 400: field type conflict in {self.reject}")
        self.batches.append(list(lines))


def make(tmp_path: Path, **kw: object) -> Spool:
    opts: dict[str, object] = {"batch_size": 100, "flush_interval": 0.05, "backoff_base": 0.01, "parallel": 1,
                               "backoff_cap": 0.05}
    opts.update(kw)
    return Spool(tmp_path / "spool" / "t.db", **opts)  # type: ignore[arg-type]


def lines(prefix: str, n: int) -> list[str]:
    return [f"m,t={prefix} v={i}i {i}" for i in range(n)]


async def test_put_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    spool = make(tmp_path)
    await spool.put(lines("a", 3))
    with sqlite3.connect(spool.path) as db:  # another connection sees the commit
        assert db.execute("SELECT count(*) FROM spool").fetchone()[0] == 3
    assert spool.stats.spooled == 3
    await spool.close(0.1)


async def test_delivers_in_order_in_batches_bounded_by_size(tmp_path: Path) -> None:
    spool, sink = make(tmp_path, batch_size=100, flush_interval=10.0), Sink()
    spool.start(sink)
    sent = lines("a", 250)
    for i in range(0, 250, 10):
        await spool.put(sent[i:i + 10])
    await until(lambda: len(sink.lines) >= 200, limit_s=5, every=0.01)  # two full batches go without waiting 10 s
    assert [len(b) for b in sink.batches] == [100, 100]
    await spool.close(2.0)  # close flushes the partial rest
    assert sink.lines == sent
    assert spool.stats.delivered == 250 and spool.stats.spooled == 0


async def test_partial_batch_goes_after_flush_interval(tmp_path: Path) -> None:
    spool, sink = make(tmp_path, batch_size=5000, flush_interval=0.2), Sink()
    spool.start(sink)
    t0 = time.monotonic()
    await spool.put(lines("a", 5))
    await until(lambda: sink.batches, limit_s=5, every=0.01)
    assert 0.15 <= time.monotonic() - t0 < 2.0
    await spool.close(1.0)


async def test_concurrent_puts_are_group_committed(tmp_path: Path) -> None:
    spool = make(tmp_path)
    await asyncio.gather(*(spool.put([f"m v={i}i {i}"]) for i in range(500)))
    assert spool.stats.spooled == 500
    await spool.close(0.1)


async def test_retryable_errors_back_off_and_honour_retry_after(tmp_path: Path) -> None:
    spool, sink = make(tmp_path, flush_interval=0.0), Sink()
    sink.fail = [RetryableError("HTTP 500"), RetryableError("HTTP 429", retry_after=0.3), RetryableError("reset")]
    spool.start(sink)
    await spool.put(lines("a", 10))
    await until(lambda: sink.batches, limit_s=5, every=0.01)
    assert sink.lines == lines("a", 10)
    assert spool.stats.failed_sends == 3 and spool.stats.last_error == "reset"
    assert sink.calls[2] - sink.calls[1] >= 0.29  # Retry-After was waited out
    await spool.close(0.5)


def test_backoff_is_full_jitter_and_capped() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 30.0, rng) for a in range(40)]
    assert all(0.0 <= d <= 30.0 for d in delays)
    assert max(backoff_delay(1, 0.5, 30.0, rng) for _ in range(200)) <= 1.0
    assert max(backoff_delay(20, 0.5, 30.0, rng) for _ in range(200)) > 20.0


async def test_permanent_error_dead_letters_only_the_bad_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool, sink = make(tmp_path, flush_interval=0.0), Sink()
    sink.reject = "t=bad"
    spool.start(sink)
    good = lines("a", 40)
    batch = [*good[:17], 'm,t=bad v="x" 1', *good[17:]]
    with caplog.at_level(logging.ERROR, logger="qos_agent.delivery"):
        await spool.put(batch)
        await spool.put(["m,t=bad v=\"y\" 2"])
        await until(lambda: spool.stats.spooled == 0, limit_s=5, every=0.01)
    assert sorted(sink.lines) == sorted(good)
    dead = await spool.dead_letters()
    assert [d[0] for d in dead] == ['m,t=bad v="x" 1', 'm,t=bad v="y" 2']
    assert "field type conflict" in dead[0][1]
    assert spool.stats.dead_lettered == 2 and spool.stats.delivered == 40
    assert sum("dead_letter" in r.getMessage() for r in caplog.records) == 1  # the same message: logged once
    await spool.close(0.5)


async def test_retry_is_logged_once_not_every_attempt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool, sink = make(tmp_path, flush_interval=0.0), Sink()
    sink.fail = [RetryableError("HTTP 401", fix="check the token")] * 6
    with caplog.at_level(logging.INFO, logger="qos_agent.delivery"):
        spool.start(sink)
        await spool.put(lines("a", 1))
        await until(lambda: sink.batches, limit_s=5, every=0.01)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "check the token" in errors[0].getMessage()
    assert any("delivering again" in r.getMessage() for r in caplog.records)
    await spool.close(0.5)


async def test_size_bound_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    spool = make(tmp_path, max_spool_mb=0.05)  # ~52 kB
    for i in range(100):
        await spool.put([f"m,t=x v=\"{'p' * 80}\" {i * 10 + j}" for j in range(10)])
    st = spool.stats
    assert st.dropped > 0 and st.spooled + st.dropped == 1000
    with sqlite3.connect(spool.path) as db:
        kept = [r[0] for r in db.execute("SELECT line FROM spool ORDER BY id")]
    assert len(kept) == st.spooled
    assert kept[-1].endswith(" 999") and not any(k.endswith(" 0") for k in kept)  # the newest stay
    assert sum(map(len, kept)) <= 0.05 * 1024 * 1024
    await spool.close(0.1)


async def test_restart_replays_what_is_left(tmp_path: Path) -> None:
    sink1 = Sink()
    sink1.fail = [RetryableError("down")] * 1000
    first = make(tmp_path, backoff_base=10.0, backoff_cap=10.0)
    first.start(sink1)
    await first.put(lines("a", 30))
    await until(lambda: sink1.calls, limit_s=5, every=0.01)
    await first.close(0.1)  # in backoff: the points stay on disk
    assert first.stats.spooled == 30
    second, sink2 = make(tmp_path), Sink()
    assert second.stats.spooled == 30
    second.start(sink2)
    await until(lambda: len(sink2.lines) == 30, limit_s=5, every=0.01)
    assert sink2.lines == lines("a", 30)
    await second.close(0.5)


async def test_corrupt_file_is_moved_aside_and_a_fresh_spool_starts(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "spool" / "t.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database, just garbage " * 200)
    with caplog.at_level(logging.ERROR, logger="qos_agent.delivery"):
        spool = make(tmp_path)
    assert any("salvaged 0 of 0 records" in r.getMessage() and "kept as t.db.corrupt-" in r.getMessage()
               for r in caplog.records)
    assert list(path.parent.glob("t.db.corrupt-*"))
    assert "damaged spool file" in spool.stats.last_error
    sink = Sink()
    spool.start(sink)
    await spool.put(lines("a", 3))
    await until(lambda: len(sink.lines) == 3, limit_s=5, every=0.01)
    await spool.close(0.5)


async def test_truncated_file_is_recovered_too(tmp_path: Path) -> None:
    spool = make(tmp_path)
    await spool.put(lines("a", 2000))
    await spool.close(0.1)
    data = spool.path.read_bytes()
    for suffix in ("-wal", "-shm"):
        Path(f"{spool.path}{suffix}").unlink(missing_ok=True)
    spool.path.write_bytes(data[:100] + b"\xff" * 4000 + data[4100:])  # clobber the header and a page
    again = make(tmp_path)
    sink = Sink()
    again.start(sink)
    await again.put(lines("b", 1))
    await until(lambda: sink.lines, limit_s=5, every=0.01)
    await again.close(0.5)


async def test_close_leaves_undelivered_points_on_disk_within_the_time_bound(tmp_path: Path) -> None:
    spool, sink = make(tmp_path, backoff_base=5.0, backoff_cap=5.0), Sink()
    sink.fail = [RetryableError("down")] * 100
    spool.start(sink)
    await spool.put(lines("a", 5))
    await until(lambda: sink.calls, limit_s=5, every=0.01)
    t0 = time.monotonic()
    await spool.close(0.3)
    assert time.monotonic() - t0 < 1.5
    with sqlite3.connect(spool.path) as db:
        assert db.execute("SELECT count(*) FROM spool").fetchone()[0] == 5


async def test_one_sink_down_never_stalls_another(tmp_path: Path) -> None:
    down, up = Spool(tmp_path / "a.db", flush_interval=0.0), Spool(tmp_path / "b.db", flush_interval=0.0)
    dead_sink, live_sink = Sink(), Sink()
    dead_sink.fail = [RetryableError("down")] * 10_000
    down.start(dead_sink)
    up.start(live_sink)
    for s in (down, up):
        await s.put(lines("x", 50))
    await until(lambda: len(live_sink.lines) == 50, limit_s=5, every=0.01)
    assert down.stats.spooled == 50
    await down.close(0.1)
    await up.close(0.5)


async def test_parallel_parts_that_all_fail_wait_the_longest_retry_after(tmp_path: Path) -> None:
    spool, sink = make(tmp_path, flush_interval=0.0, parallel=2), Sink()
    sink.fail = [RetryableError("HTTP 500"), RetryableError("HTTP 429", retry_after=0.3)]
    spool.start(sink)
    await spool.put(lines("a", 10))
    await until(lambda: spool.stats.spooled == 0, limit_s=5, every=0.01)
    assert [len(b) for b in sink.batches] == [5, 5]
    assert sorted(sink.lines) == sorted(lines("a", 10))
    assert sink.calls[2] - sink.calls[1] >= 0.29  # the longest Retry-After of the parts was honoured
    assert spool.stats.delivered == 10 and spool.stats.failed_sends == 2  # one per failed request
    await spool.close(0.5)


async def test_the_buffer_counts_every_record_in_exactly_one_place_at_every_read(tmp_path: Path) -> None:
    """One writer (the store's worker thread) moves a record from spooled to delivered or dead_lettered in
    one step, under the lock snapshots take: read while delivering, the buffer's counts always add up."""
    spool, sink = make(tmp_path, batch_size=7, flush_interval=0.0, parallel=2), Sink()
    sink.reject = "bad"
    records = [f"m,t={'bad' if i % 13 == 0 else 'ok'} v={i}i {i}" for i in range(600)]
    await spool.put(records)
    spool.start(sink)
    reads = 0
    while True:
        st = spool.store.stats()  # the buffer's own part, as /metrics reads it
        assert st.spooled + st.delivered + st.dead_lettered + st.dropped == 600, st
        reads += 1
        if st.spooled == 0:
            break
        await asyncio.sleep(0)
    assert reads > 10 and st.dead_lettered == 47 and st.delivered == 553
    assert spool.stats.failed_sends > 0 and spool.stats.dead_lettered == 47  # the loop's part adds no record
    await spool.close(0.5)
