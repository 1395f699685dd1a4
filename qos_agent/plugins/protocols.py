"""The two plug-in protocols (probes, exporters) and the per-run context a probe works in.

A probe is one class per step kind, registered under an entry point of group `qos_agent.probes`;
an exporter likewise under `qos_agent.exporters`. Both parse their own part of journeys.yaml in
`from_config`, reporting located problems, so validation and the runner use the one registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeGuard, TypeVar

from qos_agent.language.nodes import Node, Problems
from qos_agent.language.secrets import Redactor
from qos_agent.language.templating import render, render_deep
from qos_agent.model import Journey, Point, Step, StepResult

if TYPE_CHECKING:  # aiohttp costs ~0.2 s to import: validate, schema and report never need it
    import aiohttp

T = TypeVar("T")
SpecT = TypeVar("SpecT")


@dataclass(frozen=True, slots=True)
class LoadContext:
    """What a plug-in's from_config may need to resolve its settings."""

    config_dir: Path
    state_dir: Path


class Probe(Protocol[SpecT]):
    """One step kind. One instance per agent (it may hold a browser); `run` is called per step.

    Plug-ins subclass this explicitly (`class HttpProbe(Probe[HttpSpec])`) and so inherit the
    defaults of the optional capabilities (`provides`, `start`); `conformance` checks the rest.
    """

    kind: ClassVar[str]
    step_keys: ClassVar[frozenset[str]] = frozenset()  # extra step-level keys it reads (e.g. expect)
    # `check`: each journey runs once, so evidence a probe saves only on a later run (the browser's
    # `trace: on-retry`) is saved on the first; set by the runner's ProbeSet.
    one_shot: bool = False
    # True when `run` bounds all its waiting by `step.timeout_s` itself: the runner then sets no second
    # timer of its own unless the journey's remaining time is shorter (one timer per step, not two).
    bounds_own_wait: ClassVar[bool] = False

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> SpecT | None:
        """Parse `step[kind]` (and step_keys) into a frozen spec; report mistakes to problems."""
        ...

    @classmethod
    def provides(cls, spec: SpecT) -> set[str]:
        """Variable names this step sets beyond `extract:` (e.g. a browser extract action)."""
        return set()

    @classmethod
    def urls(cls, spec: SpecT) -> list[str]:
        """The URLs (templates) a step of this kind calls: its service, for uptime per service."""
        return []

    @classmethod
    def json_schema(cls) -> dict[str, Any] | None:
        """This kind's parts of the JSON Schema (`{step key: schema}`); None: the key is left open."""
        return None

    async def start(self) -> None:
        """Check the probe's setup (a browser present) before the first run; default: nothing."""
        return None  # a body, so mypy does not take the default for an abstract stub

    async def run(self, step: Step, ctx: RunContext) -> StepResult: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class SinkStats:
    """One sink's account, read by /metrics, /healthz and the `agent` point (counters since start)."""

    queued: int = 0  # points waiting in memory (the bounded queue)
    spooled: int = 0  # records waiting in the durable store (network sinks)
    delivered: int = 0  # points/records the destination ACCEPTED (never counted at enqueue/commit time)
    failed_sends: int = 0  # send attempts that failed (retryable or not)
    dropped: int = 0  # lost: full queue, store over max_spool_mb, disk write failed ...
    dropped_by_cause: dict[str, int] = field(default_factory=dict)  # e.g. {"queue_full": 3, "spool_full": 10}
    dead_lettered: int = 0  # refused for good (PermanentError)
    last_error: str = ""  # redacted
    last_delivery_s: float = 0.0  # unix time of the last accepted send (0: never)

    def drop(self, cause: str, n: int) -> None:
        """Count n lost points/records under cause."""
        if n > 0:
            self.dropped += n
            self.dropped_by_cause[cause] = self.dropped_by_cause.get(cause, 0) + n

    def plus(self, other: SinkStats) -> SinkStats:
        """The sum of two accounts (the core's and a sink's own)."""
        causes = dict(self.dropped_by_cause)
        for cause, n in other.dropped_by_cause.items():
            causes[cause] = causes.get(cause, 0) + n
        return SinkStats(
            queued=self.queued + other.queued, spooled=self.spooled + other.spooled,
            delivered=self.delivered + other.delivered, failed_sends=self.failed_sends + other.failed_sends,
            dropped=self.dropped + other.dropped, dropped_by_cause=causes,
            dead_lettered=self.dead_lettered + other.dead_lettered,
            last_error=other.last_error or self.last_error,
            last_delivery_s=max(self.last_delivery_s, other.last_delivery_s))


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """How the core's delivery loop feeds one network sink."""

    batch_size: int = 5000  # records per send at most
    flush_interval_s: float = 1.0  # a partial batch goes once its oldest record waited this long
    max_spool_mb: float = 512.0  # past this the oldest waiting records are dropped (counted)
    parallel: int = 2  # requests one batch is split into, sent at once
    backoff_base_s: float = 0.5  # retries back off exponentially with full jitter...
    backoff_cap_s: float = 30.0  # ...up to this
    close_timeout_s: float = 5.0  # on close, how long to keep delivering before leaving the rest on disk


class Outbox(Protocol):
    """Where a network sink may store records durably for sending later (e.g. periodic re-sends)."""

    async def put(self, records: Sequence[str]) -> None: ...


class Exporter(Protocol[SpecT]):
    """A local sink (sqlite, jsonl, junit): `write` gets points of the metrics schema; `close` flushes.

    Plug-ins subclass this (or NetworkSink) explicitly and so inherit the defaults (`stats`).
    """

    type: ClassVar[str]
    durable: ClassVar[bool] = False  # True: a NetworkSink, fed by the core's store and delivery loop

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> SpecT | None: ...

    @classmethod
    def split(cls, spec: SpecT) -> list[SpecT]:
        """The sinks one entry makes (one durable queue each), e.g. an Alertmanager HA pair; default one."""
        return [spec]

    @classmethod
    def create(cls, spec: SpecT, env: ExporterEnv) -> Exporter[SpecT]: ...

    async def write(self, points: Sequence[Point]) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> SinkStats:
        """The sink's own counts on top of the core's (queue, writes); default: none of its own."""
        return SinkStats()


class NetworkSink(Exporter[SpecT], Protocol[SpecT]):
    """A sink behind the network. The CORE gives it a durable store (state_dir/spool/<name>.db) and a
    delivery loop (linger/batch, backoff with jitter, Retry-After, bisection of a refused batch to
    the bad records -> dead letter, parallel sends, drop-oldest over max_spool_mb, recovery from a
    corrupt file). The sink only encodes and sends; it never writes to disk nor retries itself."""

    durable: ClassVar[bool] = True

    def sink_name(self) -> str:
        """A stable name: the spool file's name, so a restart replays what is left."""
        ...

    def delivery(self) -> DeliveryOptions:
        return DeliveryOptions()

    def encode(self, points: Sequence[Point]) -> list[str]:
        """Records to keep durably (may be [], e.g. points this sink ignores). Runs on a worker thread."""
        ...

    async def send(self, records: Sequence[str]) -> None:
        """Deliver records, or raise RetryableError / PermanentError (qos_agent.errors)."""
        ...

    async def start(self, outbox: Outbox) -> None:
        """Called once delivery runs; outbox.put stores records for sending later. Default: nothing."""
        return None

    async def write(self, points: Sequence[Point]) -> None:
        """Not called for a network sink: the core encodes into the store and sends from there."""
        raise TypeError("a NetworkSink is written through the core's durable store (qos_agent/delivery)")

    async def close(self) -> None:
        """Release clients (the core flushes and stops delivery first). Default: nothing."""
        return None


def is_network_sink(exporter: Exporter[Any]) -> TypeGuard[NetworkSink[Any]]:
    """Whether the core must wrap this exporter with the durable store and the delivery loop."""
    return exporter.durable


@dataclass(slots=True)
class ExporterEnv:
    """What an exporter instance may use at run time."""

    state_dir: Path
    region: str
    agent: str
    redact: Redactor = field(default_factory=Redactor)


@dataclass(slots=True)
class RunContext:
    """One journey run: one conversation. Steps share the cookie jar, variables and resources."""

    journey: Journey
    region: str
    agent: str
    run_id: str
    state_dir: Path
    variables: dict[str, str]
    cookie_jar: aiohttp.CookieJar
    redact: Redactor
    attempt: int = 1
    _resources: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def render(self, text: str) -> str:
        return render(text, self.variables)

    def render_deep(self, value: object) -> object:
        return render_deep(value, self.variables)

    async def resource(self, key: str, make: Callable[[], Awaitable[tuple[T, Callable[[], Awaitable[None]]]]]) -> T:
        """A per-run resource (HTTP session, browser page), made on first use, closed after the run."""
        if key not in self._resources:
            value, close = await make()
            self._resources[key] = value
            self._closers.append(close)
        return self._resources[key]  # type: ignore[no-any-return]

    def peek(self, key: str) -> Any:
        return self._resources.get(key)

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts" / self.journey.name / self.run_id

    async def close(self) -> None:
        """Close resources newest first; one failing close never stops the others."""
        while self._closers:
            close = self._closers.pop()
            with contextlib.suppress(Exception):
                await close()
        self._resources.clear()
