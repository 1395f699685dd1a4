"""The `otlp` sink (issue 24): every run is a trace a backend can join.

Against Arize Phoenix, a real OTLP/HTTP receiver: the traceparent the target received carries the
trace id stored on the step point and the span id of a span Phoenix holds; a run's spans form one
tree (run -> steps -> requests); a failed step's span is ERROR with `error.type`. Against a
recording receiver that parses the bytes: the span kinds on the wire, and an outage that loses no
span (the durable spool delivers once the receiver is back) and repeats none.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.cli import ROOT, qos
from tests.support.influx import free_port
from tests.support.phoenix import phoenix
from tests.support.waiting import wait_for


class Target:
    """The service the journey calls: records each request's traceparent; /fail answers 503."""

    def __init__(self) -> None:
        self.seen: dict[str, str | None] = {}
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen[request.path] = request.headers.get("traceparent")
        return web.Response(status=503 if request.path == "/fail" else 200, text="ok")


@pytest_asyncio.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", t.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    t.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield t
    finally:
        await runner.cleanup()


JOURNEY = """\
version: 1
agent: {{state_dir: state, listen: "off", interval: {interval}}}
exporters:
  - {{type: sqlite}}
  - {{type: otlp, url: "{otlp}", flush_interval: 200ms, max_spool_mb: 8}}
journeys:
  - name: api
    steps:
      - name: ok
        http: {{url: "{base}/ok"}}
      - name: broken
        http: {{url: "{base}/fail"}}
"""


async def test_the_backend_joins_the_run_and_holds_its_tree(tmp_path: Path, target: Target) -> None:
    with phoenix() as px:
        (tmp_path / "journeys.yaml").write_text(JOURNEY.format(interval="1m", base=target.base,
                                                               otlp=px.url + "/v1/traces"))
        done = await asyncio.to_thread(qos, "check", "journeys.yaml", "--export", "--format", "json",
                                       cwd=tmp_path, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        (run,) = json.loads(done.stdout)["journeys"]
        ok, broken = run["steps"]

        def held() -> list[dict[str, Any]] | None:
            spans = [s for s in px.spans() if s["context"]["trace_id"] == run["trace_id"]]
            return spans if len(spans) >= 5 else None  # the run, two steps, two requests

        spans = await asyncio.to_thread(wait_for, held, 30, "the run's spans in Phoenix", every=0.5)
    by_id = {s["context"]["span_id"]: s for s in spans}
    (root,) = [s for s in spans if not s["parent_id"]]
    assert root["name"] == "journey api" and root["status_code"] == "ERROR"
    assert by_id[ok["span_id"]]["parent_id"] == root["context"]["span_id"] == by_id[broken["span_id"]]["parent_id"]
    # The traceparent the target got: the run's trace, and as parent a request span Phoenix holds,
    # itself under the step's span.
    trace_id, parent = target.seen["/ok"].split("-")[1:3]  # type: ignore[union-attr]
    assert trace_id == run["trace_id"] and by_id[parent]["parent_id"] == ok["span_id"]
    assert by_id[parent]["attributes"]["http.request.method"] == "GET"
    assert by_id[parent]["attributes"]["url.full"] == f"{target.base}/ok"
    failed = by_id[broken["span_id"]]
    assert failed["status_code"] == "ERROR" and failed["attributes"]["error.type"] == "status"
    assert by_id[ok["span_id"]]["status_code"] == "UNSET" and len(spans) == 5


class Receiver:
    """An OTLP/HTTP receiver that parses what it gets: spans by id, repeats counted."""

    def __init__(self) -> None:
        self.spans: dict[bytes, Span] = {}
        self.repeats = 0
        self.runner: web.AppRunner | None = None

    async def traces(self, request: web.Request) -> web.Response:
        assert request.headers["Content-Type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(await request.read())
        for rs in message.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            assert attrs["service.name"] == "qos-agent" and attrs["qos.region"] == "local"
            for ss in rs.scope_spans:
                for span in ss.spans:
                    self.repeats += span.span_id in self.spans
                    self.spans[span.span_id] = span
        return web.Response(status=200)

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self.traces)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_an_outage_loses_no_span_and_the_kinds_on_the_wire(tmp_path: Path, target: Target) -> None:
    port = free_port()
    (tmp_path / "journeys.yaml").write_text(JOURNEY.format(interval="300ms", base=target.base,
                                                           otlp=f"http://127.0.0.1:{port}/v1/traces"))
    agent = await asyncio.create_subprocess_exec(sys.executable, "-m", "qos_agent", "run", "journeys.yaml",
                                                 cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    receiver = Receiver()
    try:
        await asyncio.sleep(4)  # runs while the receiver is down: their spans wait in the spool
        await receiver.start(port)
        await asyncio.sleep(3)
    finally:
        agent.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(agent.communicate(), 60)
    try:
        runs = _runs(tmp_path / "state" / "qos-results.db")
        async with asyncio.timeout(20):  # the spool drains on the way out (close_timeout), or already did
            while {s.trace_id.hex() for s in receiver.spans.values() if not s.parent_span_id} != runs:
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(out.decode(errors="replace")[-3000:]) from None
    finally:
        await receiver.stop()
    assert agent.returncode == 0 and len(runs) >= 8
    assert receiver.repeats == 0  # nothing accepted was sent again
    kinds = {(s.kind, s.name.split()[0]) for s in receiver.spans.values()}
    assert kinds == {(Span.SPAN_KIND_INTERNAL, "journey"), (Span.SPAN_KIND_INTERNAL, "step"),
                     (Span.SPAN_KIND_CLIENT, "GET")}


def _runs(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT json_extract(fields, '$.trace_id') FROM points WHERE measurement = 'journey'")
        return {r[0] for r in rows}
