"""One send policy: every network sink treats every HTTP answer alike (a table of statuses × sinks).

Each sink (every format of those that have several) is made from its config by its registered type
and sends a real request to a loopback server that answers the status under test; what `send`
raises is the verdict the core acts on: nothing (accepted), RetryableError (retry; with a `fix`:
wait for a human) or PermanentError (dead letter). `Retry-After` is read in both of its forms.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from qos_agent.errors import PermanentError, RetryableError
from qos_agent.plugins import registry
from qos_agent.plugins.sinks import ExporterEnv, NetworkSink, is_network_sink
from qos_agent.sinks.policy import Verdict, retry_after_seconds, verdict
from tests.support.sinks import NETWORK_EXAMPLES, parse_exporter
from tests.test_alertmanager_sink import disruption

# status -> what every sink must make of it
TABLE: dict[int, Verdict] = {
    200: Verdict.ACCEPTED, 204: Verdict.ACCEPTED,
    301: Verdict.HUMAN, 308: Verdict.HUMAN,
    400: Verdict.DEAD, 401: Verdict.HUMAN, 403: Verdict.HUMAN, 404: Verdict.HUMAN, 405: Verdict.DEAD,
    407: Verdict.HUMAN, 408: Verdict.RETRY, 409: Verdict.DEAD, 410: Verdict.HUMAN, 413: Verdict.DEAD,
    422: Verdict.DEAD, 425: Verdict.RETRY, 429: Verdict.RETRY,
    500: Verdict.RETRY, 502: Verdict.RETRY, 503: Verdict.RETRY, 504: Verdict.RETRY,
}


class Answering:
    """A loopback server answering every request with `status` (and `retry_after`, when set)."""

    def __init__(self) -> None:
        self.status = 200
        self.retry_after = ""
        self.requests = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        if 300 <= self.status < 400:
            return web.Response(status=self.status, headers=headers)  # no Location: nowhere to go
        return web.Response(status=self.status, text="" if self.status == 204 else f"answer {self.status}",
                            headers=headers)

    async def start(self) -> Answering:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Answering]:
    s = await Answering().start()
    yield s
    await s.close()


async def made(name: str, url: str, state_dir: Path) -> tuple[NetworkSink, list[str]]:
    """The sink of a table row, and the records it made of one journey run and one disruption."""
    kind, config = NETWORK_EXAMPLES[name]
    spec = parse_exporter(kind, config, state_dir, url)
    sink = registry.exporter_class(kind).create(spec, ExporterEnv(state_dir, "ap-south", "agent-ap"))
    assert is_network_sink(sink)
    opened = disruption("open")
    run = opened.__class__("journey", (("agent", "agent-ap"), ("journey", "checkout"), ("region", "ap-south")),
                           (("duration_ms", 12.5), ("success", True), ("trace_id", "ab" * 16), ("span_id", "cd" * 8)),
                           opened.time_ms)
    records = sink.encode([run, opened])
    assert records, name
    return sink, records


async def outcome(sink: NetworkSink, records: list[str]) -> tuple[Verdict, Any]:
    try:
        await sink.send(records)
    except RetryableError as e:
        return (Verdict.HUMAN if e.fix else Verdict.RETRY), e
    except PermanentError as e:
        return Verdict.DEAD, e
    return Verdict.ACCEPTED, None


def test_every_network_sink_is_in_the_table() -> None:
    durable = {t for t in registry.BUILTIN_EXPORTERS if registry.exporter_class(t).durable}
    assert {kind for kind, _ in NETWORK_EXAMPLES.values()} == durable


@pytest.mark.parametrize("name", sorted(NETWORK_EXAMPLES))
async def test_every_sink_gives_every_status_the_same_verdict(name: str, server: Answering, tmp_path: Path) -> None:
    got = {}
    for status in TABLE:  # a sink (and its state) per answer: an alert sink does not re-post what was accepted
        sink, records = await made(name, server.url, tmp_path / str(status))
        try:
            server.status = status
            got[status], err = await outcome(sink, records)
            if err is not None:
                assert f"HTTP {status}" in str(err), (status, str(err))
        finally:
            await sink.close()
    assert got == TABLE
    assert server.requests >= len(TABLE)  # every answer came from a real request


@pytest.mark.parametrize("name", sorted(NETWORK_EXAMPLES))
async def test_every_sink_waits_what_retry_after_says_in_both_forms(name: str, server: Answering,
                                                                     tmp_path: Path) -> None:
    sink, records = await made(name, server.url, tmp_path)
    try:
        server.status, server.retry_after = 429, "7"
        kind, err = await outcome(sink, records)
        assert kind is Verdict.RETRY and err.retry_after == 7.0
        server.status = 503
        server.retry_after = email.utils.formatdate(time.time() + 120, usegmt=True)
        kind, err = await outcome(sink, records)
        assert kind is Verdict.RETRY and 100 <= err.retry_after <= 121
    finally:
        await sink.close()


@pytest.mark.parametrize("name", sorted(NETWORK_EXAMPLES))
async def test_every_sink_retries_when_nobody_listens(name: str, tmp_path: Path) -> None:
    sink, records = await made(name, "http://127.0.0.1:9", tmp_path)
    try:
        kind, err = await outcome(sink, records)
        assert kind is Verdict.RETRY and "127.0.0.1" in str(err)
    finally:
        await sink.close()


def test_the_verdicts_and_retry_after_forms() -> None:
    assert {s: verdict(s) for s in TABLE} == TABLE
    assert verdict(100) is Verdict.RETRY and verdict(599) is Verdict.RETRY
    assert retry_after_seconds("120") == 120.0 and retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412420.0) == 60.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412500.0) == 0.0  # in the past
    for bad in ("", None, "soon", "nan", "inf", "Wed, 21 Oct 2015 07:28:00"):  # no zone: not an HTTP-date
        assert retry_after_seconds(bad) is None, bad
