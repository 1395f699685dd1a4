"""A network sink written only as encode + send, and a real HTTP collector for it to send to.

`CollectorSink` is what a third party would write for a new destination: it parses its config,
turns points into records and POSTs a batch; it neither stores nor retries. The core's store and
delivery loop make it durable (tests/test_delivery_sink.py proves it: outage, kill -9).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import aiohttp
from aiohttp import web

from qos_agent.errors import PermanentError, RetryableError
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.model import Point
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink


@dataclass(frozen=True, slots=True)
class CollectorSpec:
    url: str
    name: str = "collector"


class CollectorSink(NetworkSink[CollectorSpec]):
    """POSTs newline-separated JSON records to `url`; 5xx/unreachable retryable, 4xx permanent."""

    type: ClassVar[str] = "collector"

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> CollectorSpec | None:
        r = Reader(node, problems, frozenset({"type", "url", "name"}), "collector exporter", required=("url",))
        return CollectorSpec(r.str("url"), r.str("name") or "collector") if r.ok else None

    @classmethod
    def create(cls, spec: CollectorSpec, env: ExporterEnv) -> CollectorSink:
        return cls(spec)

    def __init__(self, spec: CollectorSpec) -> None:
        self.spec = spec
        self._session: aiohttp.ClientSession | None = None

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        return DeliveryOptions(batch_size=500, flush_interval_s=0.1, backoff_base_s=0.05, backoff_cap_s=0.3)

    def encode(self, points: Sequence[Point]) -> list[str]:
        return [json.dumps({"m": p.measurement, "tags": dict(p.tags), "fields": dict(p.fields), "t": p.time_ms},
                           sort_keys=True) for p in points]

    async def send(self, records: Sequence[str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        try:
            async with self._session.post(self.spec.url, data="\n".join(records)) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise RetryableError(f"cannot reach {self.spec.url}: {type(e).__name__}") from e
        if resp.status >= 500:
            raise RetryableError(f"HTTP {resp.status}: {text[:200]}")
        if resp.status >= 400:
            raise PermanentError(f"HTTP {resp.status}: {text[:200]}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Collector:
    """A real HTTP server on 127.0.0.1 keeping every record it accepted; stop/start keep the port."""

    def __init__(self) -> None:
        self.records: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    async def _ingest(self, request: web.Request) -> web.Response:
        body = await request.text()
        lines = [line for line in body.split("\n") if line]
        if any('"bad"' in line for line in lines):
            return web.Response(status=400, text="record refused: bad")
        self.records.extend(lines)
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
