"""Delivery of points to every configured sink, each behind its own bounded queue.

A probe only ever calls `submit`, which never waits: a slow or dead sink fills its own queue (and
then counts what it had to drop) but never stalls a probe or another sink. Network sinks add
their durable spool behind `write`, so what reaches them is on disk before it counts as accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qos_agent.delivery.points import points_of
from qos_agent.language.secrets import Redactor
from qos_agent.model import Config, JourneyResult, Point
from qos_agent.plugins import registry
from qos_agent.plugins.protocols import ExporterEnv

log = logging.getLogger(__name__)

QUEUE_BATCHES = 10_000  # batches (one per journey run) waiting per sink before drops are counted
MAX_BATCH_POINTS = 5_000
LINGER_S = 0.1  # how long a sink waits for more points before writing a batch


@dataclass(slots=True)
class SinkStats:
    exported: int = 0
    export_errors: int = 0
    dropped: int = 0


class _Sink:
    def __init__(self, name: str, exporter: Any) -> None:
        self.name = name
        self.exporter = exporter
        self.queue: asyncio.Queue[Sequence[Point]] = asyncio.Queue(QUEUE_BATCHES)
        self.stats = SinkStats()
        self.task: asyncio.Task[None] | None = None
        self._logged_error = False

    def offer(self, points: Sequence[Point]) -> None:
        try:
            self.queue.put_nowait(points)
        except asyncio.QueueFull:
            self.stats.dropped += len(points)

    async def loop(self) -> None:
        loop = asyncio.get_running_loop()
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
        try:
            await self.exporter.write(batch)
            self.stats.exported += len(batch)
            self._logged_error = False
        except Exception as e:  # a sink's failure is counted and logged once, never raised
            self.stats.export_errors += 1
            self.stats.dropped += len(batch)
            if not self._logged_error:
                log.error("exporter %s failed to write %d points: %s", self.name, len(batch), e)
                self._logged_error = True


class Pipeline:
    """Results in, points out to every sink."""

    def __init__(self, exporters: Sequence[tuple[str, Any]]) -> None:
        self.sinks = [_Sink(name, exporter) for name, exporter in exporters]

    @classmethod
    def from_config(cls, config: Config, redact: Redactor, only: Sequence[str] | None = None) -> Pipeline:
        env = ExporterEnv(state_dir=Path(config.agent.state_dir), region=config.agent.region,
                          agent=config.agent.name, redact=redact)
        made = []
        for i, ec in enumerate(config.exporters):
            if only is not None and ec.type not in only:
                continue
            exporter = registry.exporter_class(ec.type).create(ec.spec, env)
            made.append((f"{ec.type}#{i}", exporter))
        return cls(made)

    def start(self) -> None:
        for sink in self.sinks:
            if sink.task is None:
                sink.task = asyncio.create_task(sink.loop(), name=f"sink-{sink.name}")

    def submit(self, results: Sequence[JourneyResult]) -> None:
        self.submit_points(points_of(results))

    def submit_points(self, points: Sequence[Point]) -> None:
        for sink in self.sinks:
            sink.offer(points)

    @property
    def stats(self) -> SinkStats:
        total = SinkStats()
        for sink in self.sinks:
            total.exported += sink.stats.exported
            total.export_errors += sink.stats.export_errors
            total.dropped += sink.stats.dropped
        return total

    def exporter_stats(self) -> list[Any]:
        """The sinks' own stats objects (spool depth, dead letters) where they have them."""
        return [getattr(s.exporter, "stats", None) for s in self.sinks if getattr(s.exporter, "stats", None)]

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
                await sink.exporter.close()
            except Exception as e:
                log.error("exporter %s failed to close: %s", sink.name, e)
