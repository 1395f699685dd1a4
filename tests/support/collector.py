"""A network sink written only as encode + send, and a real HTTP collector for it to send to.

What a third party writes for a new destination: `CollectorType` (light: parses and describes its
config, makes the sink) and `CollectorSink` (turns points into records and POSTs a batch; it neither
stores nor retries). The core's store and delivery loop make it durable (tests/test_delivery_sink.py
proves it: outage, kill -9).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.model import Point
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import DeliveryOptions, Exporter, ExporterEnv, NetworkSink, SinkType
from qos_agent.sinks.http import Poster


@dataclass(frozen=True, slots=True)
class CollectorSpec:
    url: str
    name: str = "collector"


class CollectorType(SinkType[CollectorSpec]):
    """The registered side: config, schema, and the sink on demand."""

    type: ClassVar[str] = "collector"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> CollectorSpec | None:
        r = Reader(node, problems, frozenset({"type", "url", "name"}), "collector exporter", required=("url",))
        return CollectorSpec(r.str("url"), r.str("name") or "collector") if r.ok else None

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False, "required": ["url"],
                "properties": {"url": {"type": "string"}, "name": {"type": "string"}}}

    @classmethod
    def create(cls, spec: CollectorSpec, env: ExporterEnv) -> Exporter:
        return CollectorSink(spec)


class CollectorSink(NetworkSink):
    """POSTs newline-separated JSON records to `url`; the answer goes through the core's one send policy."""

    type: ClassVar[str] = "collector"

    def __init__(self, spec: CollectorSpec) -> None:
        self.spec = spec
        self.poster = Poster(where=spec.url, timeout_s=3.0)

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        return DeliveryOptions(batch_size=500, flush_interval_s=0.1, backoff_base_s=0.05, backoff_cap_s=0.3)

    def encode(self, points: Sequence[Point]) -> list[str]:
        return [json.dumps({"m": p.measurement, "tags": dict(p.tags), "fields": dict(p.fields), "t": p.time_ms},
                           sort_keys=True) for p in points]

    async def send(self, records: Sequence[str]) -> None:
        await self.poster.post(self.spec.url, "\n".join(records).encode())

    async def close(self) -> None:
        await self.poster.close()


def record_id(record: str) -> str:
    """A record's id as a receiver reads it: the point's series and time (InfluxDB's own identity); a
    record that is not a point (a test's raw line) is its own id."""
    try:
        r = json.loads(record)
        return json.dumps([r["m"], sorted(r["tags"].items()), r["t"]])
    except (ValueError, KeyError, TypeError, AttributeError):
        return record


class Collector:
    """A real HTTP server on 127.0.0.1 recording every record it accepted, repeats included (a receiver
    that counts duplicates by id, not a store that overwrites them); stop/start keep the port.

    Faults: `down` answers 503 to everything; a request holding an id in `fail_once` answers 503 (and
    those ids are then forgotten), after `fail_after_s` (so a sibling request settles first); `slow_s` records the body, then waits before answering (a request
    under way when its sender is killed); a record holding "bad" is refused for good (400)."""

    def __init__(self) -> None:
        self.records: list[str] = []
        self.port = 0
        self.down = False
        self.fail_once: set[str] = set()
        self.fail_after_s = 0.0
        self.slow_s = 0.0
        self.requests = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    async def _ingest(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests += 1
        lines = [line for line in body.split("\n") if line]
        if self.down:
            return web.Response(status=503, text="down for now")
        failing = self.fail_once & {record_id(line) for line in lines} if self.fail_once else set()
        if failing:
            self.fail_once -= failing
            await asyncio.sleep(self.fail_after_s)
            return web.Response(status=503, text=f"{len(failing)} records could not be written now")
        if any('"bad"' in line for line in lines):
            return web.Response(status=400, text="record refused: bad")
        self.records.extend(lines)
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/ingest", self._ingest)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def distinct(self) -> int:
        return len(set(self.records))

    def ids(self) -> Counter[str]:
        """How many times each record id arrived."""
        return Counter(record_id(r) for r in self.records)

    def duplicates(self) -> dict[str, int]:
        """Record ids that arrived more than once, and how many times."""
        return {i: n for i, n in self.ids().items() if n > 1}
