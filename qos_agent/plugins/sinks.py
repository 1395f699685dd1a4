"""The sink protocols: a sink type (light: config, schema, factory); at run time a local sink writes
points and a network sink only encodes and sends.

A sink type is one class registered under an entry point of group `qos_agent.exporters`. It parses
its own part of journeys.yaml in `from_config` (located problems) and describes it in `json_schema`,
so validation, the schema and the agent use the one registry. The core wraps every network sink with
the durable store and the delivery loop (qos_agent/delivery): the plug-in never writes to disk or
retries, and its credentials are added when a batch is sent, never stored with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeGuard, TypeVar

from qos_agent.language.nodes import Node, Problems
from qos_agent.language.secrets import Redactor
from qos_agent.model import Point
from qos_agent.plugins.context import LoadContext

SpecT = TypeVar("SpecT")


@dataclass(frozen=True, slots=True)
class SinkStats:
    """One sink's account as read now by /metrics, /healthz and the `agent` point (counters since start).

    A snapshot: every number has one writer — the memory queue (queued, dropped[queue_full], a local
    sink's writes), the durable buffer of a network sink (spooled, delivered, dead_lettered, its
    drops) or its delivery loop (failed_sends, last_error, last_delivery_s) — and each builds its
    part; `plus` adds the parts (qos_agent/delivery)."""

    queued: int = 0  # points waiting in memory (the bounded queue), a batch being stored included
    spooled: int = 0  # records waiting in the durable store (network sinks), a batch being sent included
    delivered: int = 0  # points/records the destination ACCEPTED (never counted at enqueue/commit time)
    failed_sends: int = 0  # send attempts that failed (retryable or not)
    dropped: int = 0  # lost: full queue, store over max_spool_mb, disk write failed ...
    dropped_by_cause: Mapping[str, int] = field(default_factory=dict)  # e.g. {"queue_full": 3, "spool_full": 10}
    dead_lettered: int = 0  # refused for good (PermanentError)
    last_error: str = ""  # redacted
    last_error_s: float = 0.0  # unix time of last_error (the newest of the parts' wins)
    last_delivery_s: float = 0.0  # unix time of the last accepted send (0: never)
    pruned: int = 0  # kept records the sink removed early to stay within its size bound (sqlite max_mb)

    @classmethod
    def dropping(cls, causes: Mapping[str, int], **counts: Any) -> SinkStats:
        """A part whose drops are `causes` (dropped is their sum)."""
        kept = {c: n for c, n in causes.items() if n}
        return cls(dropped=sum(kept.values()), dropped_by_cause=kept, **counts)

    def plus(self, other: SinkStats) -> SinkStats:
        """The sum of two parts of an account (or of two sinks' accounts)."""
        causes = dict(self.dropped_by_cause)
        for cause, n in other.dropped_by_cause.items():
            causes[cause] = causes.get(cause, 0) + n
        newer = other if other.last_error and other.last_error_s >= self.last_error_s else self
        return SinkStats(
            queued=self.queued + other.queued, spooled=self.spooled + other.spooled,
            delivered=self.delivered + other.delivered, failed_sends=self.failed_sends + other.failed_sends,
            dropped=self.dropped + other.dropped, dropped_by_cause=causes,
            dead_lettered=self.dead_lettered + other.dead_lettered,
            last_error=newer.last_error or self.last_error or other.last_error,
            last_error_s=max(self.last_error_s, other.last_error_s),
            last_delivery_s=max(self.last_delivery_s, other.last_delivery_s), pruned=self.pruned + other.pruned)


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


class SinkType(Protocol[SpecT]):
    """One sink type as the loader, the schema generator and the pipeline see it: light to import.

    The class registered under `qos_agent.exporters` parses and describes its part of journeys.yaml
    and makes the sink on demand: `create` is where a network client (aiohttp, influxdb-client,
    protobuf...) is imported, so `validate` and `check` import only what a file's sinks need.
    """

    type: ClassVar[str]
    durable: ClassVar[bool] = False  # True: `create` makes a NetworkSink (the core adds store + delivery)

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> SpecT | None:
        """Parse one `exporters:` item into a frozen spec; report mistakes to problems (located)."""
        ...

    @classmethod
    def split(cls, spec: SpecT) -> list[SpecT]:
        """The sinks one entry makes (one durable queue each), e.g. an Alertmanager HA pair; default one."""
        return [spec]

    @classmethod
    def json_schema(cls) -> dict[str, Any] | None:
        """The JSON Schema of one `exporters:` item of this type (its keys but `type`); None: left open."""
        return None

    @classmethod
    def create(cls, spec: SpecT, env: ExporterEnv) -> Exporter:
        """The sink itself (run time): an Exporter, or a NetworkSink when `durable`."""
        ...


class Exporter(Protocol):
    """A local sink at run time (sqlite, jsonl, junit): `write` gets points of the metrics schema; `close` flushes.

    Plug-ins subclass this (or NetworkSink) explicitly and so inherit the defaults (`stats`).
    """

    type: ClassVar[str]
    durable: ClassVar[bool] = False  # True: a NetworkSink, fed by the core's store and delivery loop

    async def write(self, points: Sequence[Point]) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> SinkStats:
        """The counts only the sink itself can know (e.g. rows pruned early); default: none of its own."""
        return SinkStats()


class NetworkSink(Exporter, Protocol):
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

    def credentials(self) -> list[str]:
        """Values masked in everything the core says about this sink (its log lines, last_error, the
        dead letter's messages): passwords, tokens, a webhook URL's path. Default: none."""
        return []

    async def write(self, points: Sequence[Point]) -> None:
        """Not called for a network sink: the core encodes into the store and sends from there."""
        raise TypeError("a NetworkSink is written through the core's durable store (qos_agent/delivery)")

    async def close(self) -> None:
        """Release clients (the core flushes and stops delivery first). Default: nothing."""
        return None


def is_network_sink(exporter: Exporter) -> TypeGuard[NetworkSink]:
    """Whether the core must wrap this exporter with the durable store and the delivery loop."""
    return exporter.durable


@dataclass(slots=True)
class ExporterEnv:
    """What an exporter instance may use at run time."""

    state_dir: Path
    region: str
    agent: str
    redact: Redactor = field(default_factory=Redactor)
    trace_url: str = ""  # agent.trace_url: a link template with {trace_id}, for what people open from an alert

    def trace_link(self, trace_id: str) -> str:
        """The link to a run's trace ("" without a template or an id)."""
        return self.trace_url.replace("{trace_id}", trace_id) if self.trace_url and trace_id else ""


