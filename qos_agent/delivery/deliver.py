"""The delivery loop the core runs for every network sink (Telegraf's running_output, in asyncio).

One task sends the store's oldest records in order, in batches bounded by `batch_size` records or
`flush_interval_s` since the oldest waiting record arrived, to the sink's `send(records)`, which
raises `RetryableError` (connection, timeout, 5xx, 429/503 with `retry_after`, and problems a human
must fix — the records wait) or `PermanentError` (a refusal that will never succeed). A refused batch
is bisected down to the offending records, which go to dead_letter (counted; the message logged
once) while the rest are delivered. Retries back off exponentially with full jitter, capped. A batch
may be split into `parallel` requests sent at once; every part is waited for (a request under way is
never cancelled: it may already be accepted), then the store settles what was taken and what was
refused, and only what failed is leased again: within a process's life nothing the destination
accepted is sent twice. Across `kill -9` the batch under way may be (delivery is at least once).

Each counter has one writer. The store (the buffer) counts what it holds and what left it:
`delivered` and `dead_lettered` grow when a batch is settled, once per record. This loop counts only
its attempts: `failed_sends` (every failed request), `last_error`, `last_delivery_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from qos_agent.delivery.spoolfile import Batch
from qos_agent.delivery.store import Store
from qos_agent.errors import PermanentError, RetryableError
from qos_agent.language.secrets import Redactor
from qos_agent.plugins.sinks import DeliveryOptions, SinkStats

log = logging.getLogger(__name__)

Sender = Callable[[Sequence[str]], Awaitable[None]]
BISECT_BUDGET = 64  # sends spent isolating bad records in one batch before dead-lettering whole chunks
MAX_RETRY_AFTER_S = 300.0
STORE_RETRY_S = 1.0  # a failed local read/ack (disk full) is retried this often: cheap, and resumes fast


class _GiveUp(Exception):
    """Closing and the sink still fails: stop trying, the records stay on disk for the next start."""


@dataclass(slots=True)
class Sent:
    """What became of each record of a batch (by position): what the store settles, what is retried."""

    accepted: list[int] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    error: Exception | None = None  # the failure that asks for the longest wait (Retry-After)


def _wait_of(e: Exception) -> float:
    return (e.retry_after or 0.0) if isinstance(e, RetryableError) else 0.0


def _why(e: Exception) -> tuple[str, str, float | None]:
    """(message, fix, retry_after) of a failed part, for the log and the wait."""
    if isinstance(e, RetryableError):
        return e.message, e.fix, e.retry_after
    return f"{type(e).__name__}: {e}", "", None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0.0, min(cap, base * (2.0 ** min(attempt, 30))))


class Delivery:
    """Sends what `store` holds to `send` (see the module docstring); counts its attempts."""

    def __init__(self, store: Store, send: Sender, options: DeliveryOptions, *,
                 name: str = "", redact: Redactor | None = None) -> None:
        self.store = store
        self.send = send
        self.options = options
        self.batch_size = max(1, options.batch_size)
        self.parallel = max(1, options.parallel)
        self.name = name or store.name
        self.redact = redact or Redactor()
        self.failed_sends = 0  # requests that failed (retryable or not)
        self.last_error = ""  # redacted
        self.last_error_s = 0.0
        self.last_delivery_s = 0.0  # unix time the destination last accepted a request
        self._oldest_at = 0.0  # monotonic time the oldest unread record arrived (0: due now)
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._failing = 0  # consecutive failed attempts
        self._logged: set[str] = set()
        store.on_stored = self._stored

    def stats(self) -> SinkStats:
        """The loop's part of the sink's account: its attempts."""
        return SinkStats(failed_sends=self.failed_sends, last_error=self.last_error, last_error_s=self.last_error_s,
                         last_delivery_s=self.last_delivery_s)

    def _stored(self, n: int) -> None:
        if self.store.depth - self.store.leased == n:
            self._oldest_at = time.monotonic()  # the first unread record starts the batch's clock
        if self._wake is not None:
            self._wake.set()

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Start delivering (needs a running loop); idempotent. Replays what a previous run left."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._deliver(), name=f"deliver-{self.name}")

    async def _deliver(self) -> None:
        assert self._wake is not None
        while True:
            if self.store.depth <= 0:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._wait_for_batch()
            try:
                batch = await self.store.read(self.batch_size)
                if not batch.records:
                    await self.store.recount()  # the counter drifted (a recovered file): trust the table
                    continue
            except Exception as e:  # the disk, not the sink: wait and try again, never stop delivering
                if not await self._store_failed("read", e):
                    return
                continue
            sent = await self._send_batch(batch.records)
            if not await self._settle(batch, sent.accepted, sent.dead):
                return
            if sent.error is None:
                if self._failing:
                    log.info("spool %s: delivering again after %d failed attempts", self.name, self._failing)
                    self._failing = 0
                    self._logged = {k for k in self._logged if not k.startswith("retry:")}
                continue
            # What failed stays in the store, the oldest rows: the next lease re-reads only that (and newer).
            try:
                await self._failed(*_why(sent.error))
            except _GiveUp:
                return

    async def _settle(self, batch: Batch, taken: list[int], dead: list[tuple[int, str]]) -> bool:
        """Settle until the store takes it (disk full: retried, never re-sent; counted once it works).
        False when closing with the store still failing (the rows stay and are re-sent next start)."""
        if not taken and not dead:  # nothing was taken: the lease simply ends, the rows stay
            await self.store.release()
            return True
        while True:
            try:
                await self.store.settle(batch, taken, dead)
                return True
            except Exception as e:
                if not await self._store_failed("ack", e):
                    await self.store.release()
                    return False

    async def _store_failed(self, what: str, e: Exception) -> bool:
        """The store failed (disk full, I/O): log once, back off; False when closing (stop delivering)."""
        try:
            await self._failed(f"spool {what} failed: {e}", "free disk space under agent.state_dir", STORE_RETRY_S)
        except _GiveUp:
            return False
        return True

    async def _wait_for_batch(self) -> None:
        """Until a full batch waits, the oldest record is flush_interval old, or we are closing."""
        assert self._wake is not None
        while self.store.depth < self.batch_size and not self._closing and self._oldest_at:  # 0: due now
            left = self._oldest_at + self.options.flush_interval_s - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    async def _failed(self, message: str, fix: str, retry_after: float | None) -> None:
        message = self.redact(message)
        self._problem(message)
        level = logging.ERROR if fix else logging.WARNING
        self._log_once(f"retry:{message}", level, "spool %s: delivery failed: %s%s; %d records wait on disk, "
                       "retrying", self.name, message, f" ({fix})" if fix else "", self.store.depth)
        delay = min(retry_after, MAX_RETRY_AFTER_S) if retry_after is not None else \
            backoff_delay(self._failing, self.options.backoff_base_s, self.options.backoff_cap_s)
        self._failing += 1
        if self._closing:
            raise _GiveUp
        assert self._wake is not None
        end = time.monotonic() + delay
        while not self._closing and (left := end - time.monotonic()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)  # close() wakes us for a last try

    def _problem(self, message: str) -> None:
        self.last_error, self.last_error_s = message, time.time()

    async def _send_one(self, chunk: list[str]) -> None:
        """One request; its outcome counted the moment it is known."""
        try:
            await self.send(chunk)
        except BaseException as e:
            if not isinstance(e, asyncio.CancelledError):
                self.failed_sends += 1
            raise
        self.last_delivery_s = time.time()

    async def _send_batch(self, records: list[str]) -> Sent:
        """Send a batch in `parallel` parts at once and wait for every part (never cancel one: a request
        under way may already be accepted). A permanent refusal is halved until the refused records are
        found; a retryable failure leaves its part's unsent records for later. Each record ends accepted,
        dead or failed, so the store settles exactly what the destination took."""
        sent = Sent()
        budget = BISECT_BUDGET

        async def go(positions: range) -> None:
            nonlocal budget
            try:
                await self._send_one([records[p] for p in positions])
            except PermanentError as e:
                if len(positions) == 1 or budget <= 0:
                    msg = self.redact(e.message)
                    self._problem(msg)
                    self._log_once(f"dead:{msg}", logging.ERROR, "spool %s: the sink refused %d record(s) for "
                                   "good, moved to dead_letter in %s: %s", self.name, len(positions),
                                   self.store.path, msg)
                    sent.dead.extend((p, msg) for p in positions)
                    return
                budget -= 2
                mid = len(positions) // 2
                await go(positions[:mid])
                if sent.error is not None and positions[mid:]:  # a retryable failure meanwhile: later
                    sent.failed.extend(positions[mid:])
                    return
                await go(positions[mid:])
            except asyncio.CancelledError:
                raise
            except Exception as e:  # retryable, or an unclassified error (a bug): kept and retried
                sent.failed.extend(positions)
                if sent.error is None or _wait_of(e) > _wait_of(sent.error):
                    sent.error = e
            else:
                sent.accepted.extend(positions)

        parts = 1 if len(records) < 2 * self.parallel else self.parallel
        step = -(-len(records) // parts)
        await asyncio.gather(*(go(range(k * step, min(len(records), (k + 1) * step))) for k in range(parts)))
        return sent

    def _log_once(self, key: str, level: int, msg: str, *args: object) -> None:
        if key in self._logged:
            return
        if len(self._logged) > 256:
            self._logged.clear()
        self._logged.add(key)
        log.log(level, msg, *args)

    async def close(self, timeout_s: float) -> None:
        """Deliver what can be delivered within timeout_s, then stop; the rest stays on disk."""
        await self.store.flush(timeout_s)
        self._closing = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            if self.store.depth:
                log.info("spool %s: %d records stay on disk in %s for the next start", self.name,
                         self.store.depth, self.store.path)
