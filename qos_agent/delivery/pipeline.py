"""Delivery of points to every configured sink, each behind its own bounded queue.

A probe only ever calls `submit`, which never waits: a slow or dead sink fills its own queue (and
then counts what it had to drop) but never stalls a probe or another sink. Every network sink is
wrapped by the core (delivery/durable.py): its points are encoded into its durable store and a
delivery loop sends them; `delivered` counts only what the destination accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qos_agent.delivery.points import points_of
from qos_agent.errors import SetupError
from qos_agent.language.secrets import Redactor
from qos_agent.model import Config, JourneyResult, Point
from qos_agent.plugins import registry
from qos_agent.plugins.sinks import Exporter, ExporterEnv, SinkStats, is_network_sink

if TYPE_CHECKING:  # the durable store (SQLite) is imported only when a network sink is configured
    from qos_agent.delivery.durable import DurableSink

log = logging.getLogger(__name__)

QUEUE_BATCHES = 10_000  # batches (one per journey run) waiting per sink before drops are counted
MAX_BATCH_POINTS = 5_000
LINGER_S = 0.1  # how long a sink waits for more points before writing a batch


@dataclass(slots=True)
class SinkState:
    """One sink as /metrics, /healthz and the `agent` point see it."""

    name: str
    type: str
    stats: SinkStats
    spool_fill: float = 0.0  # used share of max_spool_mb (network sinks), 0..1
    spool_bytes: int = 0  # bytes the durable store holds (network sinks)
    spool_max_bytes: int = 0  # max_spool_mb in bytes; 0: a local sink, no store
    dead_pruned: int = 0  # dead_letter rows the store removed to stay in bounds (delivery/bounds.py)
    aside_pruned: int = 0  # moved-aside damaged files the store removed to stay in bounds


@dataclass(slots=True)
class QueueAccount:
    """The memory queue's part of a sink's account (event loop only): points waiting in memory (a batch
    being written included), what a full queue dropped and, for a local sink, its writes."""

    queued: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    delivered: int = 0  # a local sink's points written
    failed_sends: int = 0  # a local sink's failed writes
    last_error: str = ""
    last_error_s: float = 0.0
    last_delivery_s: float = 0.0

    def drop(self, cause: str, n: int) -> None:
        if n > 0:
            self.dropped[cause] = self.dropped.get(cause, 0) + n

    def snapshot(self) -> SinkStats:
        return SinkStats.dropping(dict(self.dropped), queued=self.queued, delivered=self.delivered,
                                  failed_sends=self.failed_sends, last_error=self.last_error,
                                  last_error_s=self.last_error_s, last_delivery_s=self.last_delivery_s)


class _Sink:
    """One exporter behind its bounded queue; a network sink also behind its store and delivery loop."""

    def __init__(self, name: str, type_: str, exporter: Exporter, durable: DurableSink | None,
                 redact: Redactor | None = None) -> None:
        self.name = name
        self.redact = redact or Redactor()
        self.type = type_
        self.exporter = exporter
        self.durable = durable
        self.queue: asyncio.Queue[Sequence[Point]] = asyncio.Queue(QUEUE_BATCHES)
        self.account = QueueAccount()
        self.task: asyncio.Task[None] | None = None
        self._logged_error = False

    def stats(self) -> SinkStats:
        """The sink's account read now: the queue's part plus its buffer's and loop's (or its own)."""
        own = self.durable.stats() if self.durable is not None else self.exporter.stats()
        return self.account.snapshot().plus(own)

    def state(self) -> SinkState:
        if self.durable is None:
            return SinkState(self.name, self.type, self.stats())
        store = self.durable.store
        return SinkState(self.name, self.type, self.stats(), store.fill, store.used_bytes, store.max_bytes,
                         store.dead_pruned, store.aside_pruned)

    def offer(self, points: Sequence[Point]) -> None:
        try:
            self.queue.put_nowait(points)
            self.account.queued += len(points)
        except asyncio.QueueFull:
            self.account.drop("queue_full", len(points))

    async def loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self.durable is not None:
            await self.durable.start()  # replays what a previous run left, before any new point
        while True:
            batch = list(await self.queue.get())
            taken = 1
            # Linger a moment so a busy agent writes one batch per LINGER_S, not one per result:
            # a transaction per result costs far more than the wait (see docs/benchmarks.md).
            # (Polled, not wait_for(queue.get()): on Python 3.11 a timeout racing a get can lose the item.)
            deadline = loop.time() + LINGER_S
            while len(batch) < MAX_BATCH_POINTS:
                if not self.queue.empty():
                    batch.extend(self.queue.get_nowait())
                    taken += 1
                elif (remaining := deadline - loop.time()) > 0:
                    await asyncio.sleep(min(remaining, 0.01))
                else:
                    break
            await self._write(batch)
            for _ in range(taken):
                self.queue.task_done()

    async def drain(self) -> None:
        batch: list[Point] = []
        while not self.queue.empty():
            batch.extend(self.queue.get_nowait())
        if batch:
            await self._write(batch)

    async def _write(self, batch: list[Point]) -> None:
        """Write (or store) a batch; its points leave `queued` once written, stored or counted lost."""
        try:
            if self.durable is not None:
                await self.durable.write(batch)  # on disk now; `delivered` counts when the destination accepts
            else:
                await self.exporter.write(batch)
                self.account.delivered += len(batch)
                self.account.last_delivery_s = time.time()
            self._logged_error = False
        except Exception as e:  # a sink's failure is counted and logged once, never raised
            if self.durable is None:
                self.account.failed_sends += 1
            self.account.drop("write_failed", len(batch))
            self.account.last_error, self.account.last_error_s = self.redact(str(e)), time.time()
            if not self._logged_error:
                log.error("exporter %s failed to write %d points: %s", self.name, len(batch), e)
                self._logged_error = True
        finally:
            self.account.queued -= len(batch)


class Pipeline:
    """Results in, points out to every sink."""

    def __init__(self, sinks: Sequence[_Sink]) -> None:
        self.sinks = list(sinks)

    @classmethod
    def of(cls, exporters: Sequence[Exporter], state_dir: Path, redact: Redactor | None = None) -> Pipeline:
        """Each exporter behind its queue; each network sink also behind the core's store and delivery."""
        made = []
        names: dict[str, str] = {}
        if any(is_network_sink(e) for e in exporters):
            from qos_agent.delivery.durable import DurableSink  # SQLite and the delivery loop: network sinks only
        for i, exporter in enumerate(exporters):
            if is_network_sink(exporter):  # two sinks on one spool file would deliver each other's records
                name = exporter.sink_name()
                if name in names:
                    raise SetupError(f"exporters {names[name]} and {exporter.type}#{i} would share the spool "
                                     f"file spool/{name}.db (give each a different 'name')")
                names[name] = f"{exporter.type}#{i}"
            durable = DurableSink(exporter, state_dir, redact) if is_network_sink(exporter) else None
            made.append(_Sink(f"{exporter.type}#{i}", exporter.type, exporter, durable, redact))
        return cls(made)

    @classmethod
    def from_config(cls, config: Config, redact: Redactor, only: Sequence[str] | None = None) -> Pipeline:
        env = ExporterEnv(state_dir=Path(config.agent.state_dir), region=config.agent.region,
                          agent=config.agent.name, redact=redact, trace_url=config.agent.trace_url)
        made = [registry.make_sink(ec.type, ec.spec, env) for ec in config.exporters
                if only is None or ec.type in only]
        return cls.of(made, env.state_dir, redact)

    def start(self) -> None:
        for sink in self.sinks:
            if sink.task is None:
                sink.task = asyncio.create_task(sink.loop(), name=f"sink-{sink.name}")

    def submit(self, results: Sequence[JourneyResult]) -> None:
        self.submit_points(points_of(results))

    def submit_points(self, points: Sequence[Point]) -> None:
        for sink in self.sinks:
            sink.offer(points)

    def snapshot(self) -> list[SinkState]:
        """Every sink's account, read now."""
        return [sink.state() for sink in self.sinks]

    def total(self) -> SinkStats:
        """All sinks' accounts summed."""
        total = SinkStats()
        for sink in self.sinks:
            total = total.plus(sink.stats())
        return total

    async def close(self, timeout_s: float = 30.0) -> None:
        """Let the loops write what is queued, then close every exporter (each flushes)."""
        for sink in self.sinks:
            if sink.task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sink.queue.join(), timeout_s)
                sink.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sink.task
                sink.task = None
        for sink in self.sinks:
            await sink.drain()
            try:
                await (sink.durable.close() if sink.durable is not None else sink.exporter.close())
            except Exception as e:
                log.error("exporter %s failed to close: %s", sink.name, e)
