"""Failures that speak (issue 27): a failed http or websocket step keeps the start of what the server
said — masked before it is cut, cut on a character boundary, one printable line — and `check`
shows it under the failure, in its JSON and in JUnit, beside the run's trace.
"""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp import web

from qos_agent.language.text import EXCERPT_BYTES
from qos_agent.model import ErrorClass, Outcome
from qos_agent.plugins import registry
from tests.support.cli import qos
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step

SECRET = "s3cr3t-pa55word"
ERROR = '{"error": "user and password must be strings"}'


async def _login(request: web.Request) -> web.Response:
    return web.Response(status=400, text=ERROR, content_type="application/json")


async def _long(request: web.Request) -> web.Response:
    return web.Response(status=500, text="é" * 300)  # 600 bytes of two-byte characters


async def _near(request: web.Request) -> web.Response:
    return web.Response(status=502, text="x" * 195 + SECRET + "\x1b[31m tail")  # the secret spans byte 200


async def _ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str('{"type": "error", "why": "not subscribed"}')
    await ws.close()
    return ws


@pytest_asyncio.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes([web.post("/login", _login), web.get("/long", _long), web.get("/near", _near),
                    web.get("/ws", _ws)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def step(base: str, text: str, kind: str = "http") -> tuple[Outcome, ErrorClass | None, str]:
    spec, problems = parse_step(kind, text)
    assert not problems, [str(p) for p in problems.sorted()]
    async with run_context({"base": base}, secrets=[SECRET]) as ctx:
        r = await run_step(registry.make_probe(kind), make_step(spec, kind=kind), ctx)
    return r.outcome, r.error, r.body_excerpt


async def test_a_status_failure_keeps_what_the_server_said(base: str) -> None:
    outcome, error, body = await step(base, 'http: {method: POST, url: "http://{{ base }}/login", json: {user: 1}}')
    assert (outcome, error, body) == (Outcome.FAILED, ErrorClass.STATUS, ERROR)


async def test_the_excerpt_is_cut_on_a_character_boundary(base: str) -> None:
    _, _, body = await step(base, 'http: {url: "http://{{ base }}/long"}')
    assert body == "é" * (EXCERPT_BYTES // 2) and len(body.encode()) == EXCERPT_BYTES


async def test_a_secret_is_masked_before_the_cut_and_control_bytes_escaped(base: str) -> None:
    _, _, body = await step(base, 'http: {url: "http://{{ base }}/near"}')
    assert body == "x" * 195 + "***"  # cut first, the secret's first characters would have slipped through
    assert SECRET[:4] not in body


async def test_a_websocket_failure_keeps_the_last_message(base: str) -> None:
    outcome, error, body = await step(
        base, 'websocket: {url: "ws://{{ base }}/ws", expect_message: {json: {"$.type": {equals: ack}}}}', "websocket")
    assert outcome is Outcome.FAILED and error is ErrorClass.ASSERTION and body == '{"type": "error", "why": "not subscribed"}'


async def test_check_shows_the_response_under_the_failure(tmp_path: Path, base: str) -> None:
    (tmp_path / "journeys.yaml").write_text(f"""\
version: 1
agent: {{state_dir: state, trace_url: "https://tempo.example/trace/{{trace_id}}"}}
journeys:
  - name: login
    steps:
      - name: login
        http: {{method: POST, url: "http://{base}/login", json: {{user: 1}}}}
        expect: {{status: 200}}
""")
    table = await asyncio.to_thread(qos, "check", "journeys.yaml", "--junit", "out.xml", cwd=tmp_path)
    assert table.returncode == 1
    assert "login: status: HTTP 400, expected 200" in table.stdout
    assert f"response: {ERROR}" in table.stdout and "trace: https://tempo.example/trace/" in table.stdout
    as_json = await asyncio.to_thread(qos, "check", "journeys.yaml", "--format", "json", cwd=tmp_path)
    (journey,) = json.loads(as_json.stdout)["journeys"]
    assert journey["steps"][0]["body_excerpt"] == ERROR
    assert journey["trace_url"] == f"https://tempo.example/trace/{journey['trace_id']}"
    failure = ET.parse(tmp_path / "out.xml").getroot().find("testcase/failure")
    assert failure is not None and f"response: {ERROR}" in (failure.text or "")
