"""W3C Trace Context on every request of a run (issue 24): one trace per run, a span per step, each
request's own span id as the parent id; websocket upgrades and gRPC metadata too; the browser's
requests to the journey's own origins but never to a third party's; `traceparent: false` turns the
header off while ids are still recorded; a retry is a new trace that names the first.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from qos_agent.config.loader import load_config
from qos_agent.delivery.points import result_points
from qos_agent.model import JourneyResult, Outcome
from qos_agent.runloop.runner import Runner
from tests.support.components import missing, needs

try:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
except ImportError:  # pragma: no cover - the dev extra installs it
    missing("grpcio (the dev extra: pip install -e '.[dev]')", "make setup")

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
PAGE = """<!doctype html><html><head><title>shop</title>
<link rel="stylesheet" href="{third}/style.css"></head>
<body><h1>shop</h1><img src="/logo.png"><script src="{third}/tag.js"></script></body></html>"""


class Recorder:
    """An app that records the traceparent of every request, by path."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.base = ""
        self.page = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, request.headers.get("traceparent")))
        if request.path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str("ready")
            await ws.close()
            return ws
        if request.path == "/page":
            return web.Response(text=self.page, content_type="text/html")
        if request.path == "/flaky":
            return web.Response(status=500 if sum(p == "/flaky" for p, _ in self.seen) == 1 else 200)
        return web.Response(text="ok", content_type="text/css" if request.path.endswith(".css") else "text/plain")

    def headers(self, path: str) -> list[str | None]:
        return [tp for p, tp in self.seen if p == path]


@pytest_asyncio.fixture
async def apps() -> AsyncIterator[tuple[Recorder, Recorder]]:
    """The shop and a third party (another origin: another port)."""
    shop, third = Recorder(), Recorder()
    runners = []
    for rec in (shop, third):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", rec.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        rec.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        runners.append(runner)
    shop.page = PAGE.format(third=third.base)
    try:
        yield shop, third
    finally:
        for runner in runners:
            await runner.cleanup()


class MetadataHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def Check(self, request: Any, context: Any) -> Any:
        self.metadata.append(dict(context.invocation_metadata()))
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def run(tmp_path: Path, text: str) -> list[JourneyResult]:
    (tmp_path / "journeys.yaml").write_text(text)
    config = load_config(tmp_path / "journeys.yaml", env={})
    runner = Runner(config)
    try:
        return await runner.run(config.journeys[0])
    finally:
        await runner.close()


def parsed(header: str | None) -> tuple[str, str]:
    assert header is not None
    m = TRACEPARENT.match(header)
    assert m, header
    return m.group(1), m.group(2)


async def test_each_request_carries_the_runs_trace_and_its_own_span(tmp_path: Path,
                                                                    apps: tuple[Recorder, Recorder]) -> None:
    shop, _ = apps
    servicer = MetadataHealth()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        (result,) = await run(tmp_path, f"""\
version: 1
agent: {{state_dir: state}}
journeys:
  - name: traced
    steps:
      - name: first
        http: {{url: "{shop.base}/a"}}
      - name: second
        http: {{url: "{shop.base}/b"}}
      - name: live
        websocket: {{url: "ws://127.0.0.1:{shop.base.rsplit(':', 1)[1]}/ws", expect_message: {{contains: ready}}}}
      - name: health
        grpc: {{target: "127.0.0.1:{port}"}}
""")
    finally:
        await server.stop(None)
    assert result.outcome is Outcome.PASSED, [(s.step, s.error_message) for s in result.steps]
    assert re.fullmatch(r"[0-9a-f]{32}", result.trace_id) and re.fullmatch(r"[0-9a-f]{16}", result.span_id)
    wire = [parsed(shop.headers("/a")[0]), parsed(shop.headers("/b")[0]), parsed(shop.headers("/ws")[0]),
            parsed(servicer.metadata[0].get("traceparent"))]
    assert {trace for trace, _ in wire} == {result.trace_id}  # one trace per run
    for step, (_, parent) in zip(result.steps, wire, strict=True):
        assert step.request_spans == [parent]  # the request's own span is the parent id sent
        assert re.fullmatch(r"[0-9a-f]{16}", step.span_id) and step.span_id != parent
    assert len({s.span_id for s in result.steps} | {result.span_id}) == 5  # a span per step, and the run's
    journey, *steps = result_points(result)
    assert journey.field("trace_id") == result.trace_id
    assert [(p.field("trace_id"), p.field("span_id")) for p in steps] == [(result.trace_id, s.span_id)
                                                                          for s in result.steps]


async def test_traceparent_false_sends_no_header_but_records_the_ids(tmp_path: Path,
                                                                     apps: tuple[Recorder, Recorder]) -> None:
    shop, _ = apps
    (result,) = await run(tmp_path, f"""\
version: 1
agent: {{state_dir: state, traceparent: false}}
journeys:
  - name: quiet
    steps:
      - name: a
        http: {{url: "{shop.base}/a"}}
""")
    assert shop.headers("/a") == [None]
    assert result.trace_id and len(result.steps[0].request_spans) == 1 and result.steps[0].span_id


async def test_a_journey_may_turn_it_on_against_the_agent(tmp_path: Path, apps: tuple[Recorder, Recorder]) -> None:
    shop, _ = apps
    (result,) = await run(tmp_path, f"""\
version: 1
agent: {{state_dir: state, traceparent: false}}
journeys:
  - name: loud
    traceparent: true
    steps:
      - name: a
        http: {{url: "{shop.base}/a"}}
""")
    assert parsed(shop.headers("/a")[0])[0] == result.trace_id


async def test_a_retry_is_a_new_trace_linked_to_the_first(tmp_path: Path, apps: tuple[Recorder, Recorder]) -> None:
    shop, _ = apps
    first, second = await run(tmp_path, f"""\
version: 1
agent: {{state_dir: state}}
journeys:
  - name: flaky
    retries: 1
    steps:
      - name: a
        http: {{url: "{shop.base}/flaky"}}
""")
    assert first.outcome is Outcome.FAILED and second.outcome is Outcome.PASSED
    assert first.trace_id != second.trace_id and second.first_trace_id == first.trace_id
    assert [parsed(h)[0] for h in shop.headers("/flaky")] == [first.trace_id, second.trace_id]
    assert result_points(second)[0].field("first_trace_id") == first.trace_id


@needs(Path("/usr/bin/chromium").exists(), "Debian chromium")
@pytest.mark.browser
async def test_the_browser_traces_first_party_requests_only(tmp_path: Path, apps: tuple[Recorder, Recorder]) -> None:
    shop, third = apps
    (result,) = await run(tmp_path, f"""\
version: 1
agent: {{state_dir: state}}
journeys:
  - name: browse
    steps:
      - name: page
        browser:
          - goto: "{shop.base}/page"
          - wait_for: h1
""")
    assert result.outcome is Outcome.PASSED, [(s.step, s.error_message) for s in result.steps]
    page_tp, logo_tp = shop.headers("/page")[0], shop.headers("/logo.png")[0]
    assert parsed(page_tp)[0] == parsed(logo_tp)[0] == result.trace_id  # the document and its own assets
    assert {parsed(page_tp)[1], parsed(logo_tp)[1]} <= set(result.steps[0].request_spans)
    assert third.headers("/style.css") == [None] and third.headers("/tag.js") == [None]  # never a third party
