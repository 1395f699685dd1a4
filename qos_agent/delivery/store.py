"""The durable store in front of every network sink: what was measured survives outages and kill -9.

The store is the buffer of Telegraf's running_output, on disk: records go in (`put`), the delivery
loop leases the oldest (`read`), and settles the lease (`settle`): what the destination took and what
it refused for good leave the spool, counted once; what failed stays, to be read again. It owns every
count of the records it holds (delivery/ledger.py), so `delivered` + `spooled` + `dead_lettered` +
`dropped` always add up. The file and why it is SQLite: delivery/spoolfile.py.

All SQLite I/O runs on one worker thread per store: the event loop never blocks, the connection is
only touched from the thread that made it, and operations run in call order. Concurrent puts are
group-committed: whatever queued while the worker was busy goes in one transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from qos_agent.delivery.ledger import Ledger
from qos_agent.delivery.spoolfile import Batch, SpoolFile
from qos_agent.language.secrets import Redactor
from qos_agent.plugins.sinks import SinkStats

T = TypeVar("T")


def spool_path(state_dir: Path, name: str) -> Path:
    """Where a sink's store lives (kept from the previous versions: their files replay)."""
    return state_dir / "spool" / f"{name}.db"


class Store:
    """A durable queue of records (see the module docstring)."""

    def __init__(self, path: Path, *, name: str = "", max_spool_mb: float = 512.0,
                 redact: Redactor | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.max_bytes = int(max_spool_mb * 1024 * 1024)
        self.ledger = Ledger()
        self.file = SpoolFile(self.path, self.name, self.max_bytes, self.ledger, redact or Redactor())
        self.on_stored: Callable[[int], None] | None = None  # told how many records each commit added
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-{self.name}")
        self._pending: list[tuple[Callable[[], list[str]], int, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._pool.submit(self.file.open).result()

    @property
    def depth(self) -> int:
        """Records waiting (a batch being sent included)."""
        return self.ledger.spooled

    @property
    def leased(self) -> int:
        """Records out for sending now (the one lease; 0 between batches)."""
        return self.file.leased

    @property
    def used_bytes(self) -> int:
        return self.file.bytes

    @property
    def fill(self) -> float:
        """Used share of max_spool_mb, 0..1."""
        return min(1.0, self.file.bytes / self.max_bytes) if self.max_bytes > 0 else 0.0

    @property
    def dead_pruned(self) -> int:
        return self.file.dead_pruned

    @property
    def aside_pruned(self) -> int:
        return self.file.aside_pruned

    def stats(self) -> SinkStats:
        """The buffer's part of the sink's account, read now (one consistent snapshot)."""
        return self.ledger.snapshot()

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def put(self, records: Sequence[str]) -> None:
        """Store records durably: they are committed to disk when this returns."""
        if records:
            items = list(records)
            await self.put_with(lambda: items, len(items))

    async def put_with(self, make: Callable[[], list[str]], points: int = 1) -> None:
        """Like put, with the records made on the worker thread (encoding stays off the event loop);
        `points`: how many points they stand for (counted as dropped if the disk write fails)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((make, points, fut))
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_loop())
        await asyncio.shield(fut)

    async def _commit_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            makers = [make for make, _, _ in batch]
            points = sum(n for _, n, _ in batch)
            n = await self._run(lambda: self.file.insert(makers, points))  # noqa: B023 (awaited at once)
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            if n and self.on_stored is not None:
                self.on_stored(n)

    async def flush(self, timeout_s: float) -> None:
        """Wait (up to timeout_s) for puts under way to be committed."""
        if self._committer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._committer), timeout_s)

    async def read(self, limit: int) -> Batch:
        """Lease the oldest records, at most limit; they stay stored until settled."""
        return await self._run(lambda: self.file.read(limit))

    async def settle(self, batch: Batch, accepted: Sequence[int], dead: Sequence[tuple[int, str]] = ()) -> None:
        """End the lease: positions `accepted` were taken by the destination (delivered), `dead` (position,
        message) refused for good (dead letter); every other record of the batch stays to be sent again."""
        await self._run(lambda: self.file.settle(batch, accepted, dead))

    async def release(self) -> None:
        """End the lease without settling anything (closing while the sink still fails)."""
        await self._run(self.file.release)

    async def recount(self) -> int:
        """Trust the table over the ledger (after a recovered file)."""
        return await self._run(self.file.recount)

    async def dead_letters(self) -> list[tuple[str, str]]:
        """(record, message) of every dead-lettered record, oldest first (for tests and inspection)."""
        return await self._run(self.file.dead_letters)

    async def close(self) -> None:
        await self._run(self.file.close)
        self._pool.shutdown(wait=False)
