"""A network sink as the core runs it: encode -> durable store -> delivery loop -> the sink's send.

The pipeline wraps every `NetworkSink` in one of these, so a sink (built-in or a third party's) is
only `encode` + `send` and still loses nothing across outages and restarts. `write` returns once
the records are committed to `state_dir/spool/<sink_name>.db`; delivery comes later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qos_agent.delivery.deliver import Delivery
from qos_agent.delivery.store import Store, spool_path
from qos_agent.language.secrets import Redactor
from qos_agent.model import Point
from qos_agent.plugins.sinks import DeliveryOptions, NetworkSink, SinkStats


class DurableSink:
    """One network sink with its store and its delivery loop; `stats()` adds their parts of its account."""

    def __init__(self, sink: NetworkSink, state_dir: Path, redact: Redactor | None = None,
                 options: DeliveryOptions | None = None) -> None:
        self.sink = sink
        self.options = options or sink.delivery()
        self.name = sink.sink_name()
        redact = Redactor(sink.credentials(), parent=redact or Redactor())  # the sink's own secrets masked too
        self.store = Store(spool_path(state_dir, self.name), name=self.name, max_spool_mb=self.options.max_spool_mb,
                           redact=redact)
        self.delivery = Delivery(self.store, sink.send, self.options, name=self.name, redact=redact)
        self._started = False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started on the first write
        self.delivery.start()  # replays what a previous run left, even before any new write

    async def start(self) -> None:
        """Start delivery and let the sink start (it may keep the store as its outbox)."""
        self.delivery.start()
        if not self._started:
            self._started = True
            await self.sink.start(self.store)

    def with_options(self, **changes: Any) -> None:
        """Adjust delivery options (tests: fast backoff, one request per batch)."""
        self.options = replace(self.options, **changes)
        self.delivery.options = self.options
        self.delivery.parallel = max(1, self.options.parallel)
        self.delivery.batch_size = max(1, self.options.batch_size)

    async def write(self, points: Sequence[Point]) -> None:
        """Encode (on the store's worker thread) and commit; on return the records are on disk."""
        if not self._started:
            await self.start()
        pts = list(points)
        if pts:
            await self.store.put_with(lambda: self.sink.encode(pts), len(pts))

    def stats(self) -> SinkStats:
        """The buffer's counts, the delivery loop's attempts and whatever the sink counts itself, read now."""
        return self.store.stats().plus(self.delivery.stats()).plus(self.sink.stats())

    async def dead_letters(self) -> list[tuple[str, str]]:
        return await self.store.dead_letters()

    async def close(self) -> None:
        """Deliver what we can within close_timeout_s; the rest stays on disk; then close the sink."""
        try:
            await self.delivery.close(self.options.close_timeout_s)
            await self.store.close()
        finally:
            await self.sink.close()
