"""The websocket step against a real aiohttp websocket server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from probes.http.probe import HttpProbe
from probes.websocket.probe import WebSocketProbe
from qos_agent.model import ErrorClass, Outcome, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.certs import Pki
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step


@asynccontextmanager
async def ws_server(tls: Any = None) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """/echo echoes (a JSON ack first), /close closes with 1011, /login sets a cookie, /private
    refuses an upgrade without it. Yields (base ws URL, the cookies each upgrade carried)."""
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.WebSocketResponse:
        seen.append(dict(request.cookies))
        ws = web.WebSocketResponse()
        ws.set_cookie("ws_seen", "yes")
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello"}))
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(json.dumps({"type": "ack", "echo": msg.data}))
        return ws

    async def close(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close(code=1011, message=b"backend down")
        return ws

    async def login(request: web.Request) -> web.Response:
        resp = web.Response(text="ok")
        resp.set_cookie("session", "sess-42")
        return resp

    async def private(request: web.Request) -> web.StreamResponse:
        if request.cookies.get("session") != "sess-42":
            return web.Response(status=403, text="no session")
        return await echo(request)

    app = web.Application()
    app.add_routes([web.get("/echo", echo), web.get("/close", close), web.get("/login", login),
                    web.get("/private", private)])
    runner = web.AppRunner(app, shutdown_timeout=1, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context() if tls else None)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"{'wss' if tls else 'ws'}://localhost:{port}", seen
    finally:
        await runner.cleanup()


async def ws(ctx: RunContext, text: str, timeout_s: float = 5.0) -> StepResult:
    spec, problems = parse_step("websocket", text)
    assert not problems, [str(p) for p in problems.sorted()]
    return await run_step(WebSocketProbe(), make_step(spec, kind="websocket", timeout_s=timeout_s), ctx)


def failed(r: StepResult, error: ErrorClass) -> str:
    assert r.outcome is Outcome.FAILED, r
    assert r.error is error, (r.error, r.error_message)
    return r.error_message


async def test_send_and_expect_a_json_message_with_phases() -> None:
    async with ws_server() as (base, _), run_context({"base": base, "item": "42"}) as ctx:
        r = await ws(ctx, 'websocket: {url: "{{ base }}/echo", send: ["order {{ item }}"], '
                          'expect_message: {json: {"$.type": {equals: ack}, "$.echo": "order {{ item }}"}}}')
    assert r.outcome is Outcome.PASSED, r.error_message
    p = r.phases
    assert p["dns_ms"] > 0 and p["connect_ms"] > 0 and p["upgrade_ms"] > 0 and p["first_message_ms"] >= 0, p
    assert r.status_code == 101 and r.bytes > 0 and r.url.endswith("/echo")


async def test_contains_and_a_message_that_never_matches() -> None:
    async with ws_server() as (base, _), run_context({"base": base}) as ctx:
        ok = await ws(ctx, 'websocket: {url: "{{ base }}/echo", expect_message: {contains: hello}}')
        never = await ws(ctx, 'websocket: {url: "{{ base }}/echo", expect_message: {contains: bye}}', timeout_s=0.5)
    assert ok.outcome is Outcome.PASSED, ok.error_message
    assert failed(never, ErrorClass.TIMEOUT) == "timed out after 0.5s (waiting for the expected message)"


async def test_a_close_with_an_error_code_is_a_status_failure() -> None:
    async with ws_server() as (base, _), run_context({"base": base}) as ctx:
        r = await ws(ctx, 'websocket: {url: "{{ base }}/close", expect_message: {contains: x}}')
    assert "closed the websocket with code 1011 (backend down)" in failed(r, ErrorClass.STATUS)


async def test_cookies_from_an_earlier_http_step_ride_on_the_upgrade_and_come_back() -> None:
    async with ws_server() as (base, seen), run_context({"base": base.replace("ws://", "http://")}) as ctx:
        refused = await ws(ctx, 'websocket: {url: "{{ base }}/private", expect_message: {contains: hello}}')
        spec, _ = parse_step("http", 'http: {url: "{{ base }}/login"}')
        login = await run_step(HttpProbe(), make_step(spec), ctx)
        r = await ws(ctx, 'websocket: {url: "{{ base }}/private", expect_message: {contains: hello}}')
        jar = {c.key: c.value for c in ctx.cookie_jar}
    assert "upgrade refused: HTTP 403" in failed(refused, ErrorClass.STATUS)
    assert login.outcome is Outcome.PASSED and r.outcome is Outcome.PASSED, r.error_message
    assert seen[-1]["session"] == "sess-42"
    assert jar.get("ws_seen") == "yes"  # set on the 101, kept in the journey's jar


async def test_wss_reports_certificate_facts() -> None:
    pki = Pki()
    leaf = pki.leaf(days=200)
    async with ws_server(tls=leaf) as (base, _), run_context({"base": base}) as ctx:
        r = await ws(ctx, f'websocket: {{url: "{{{{ base }}}}/echo", ca_file: {pki.ca_file}, '
                          'expect_message: {contains: hello}}\nexpect: {cert_days_left: 14}')
        untrusted = await ws(ctx, 'websocket: {url: "{{ base }}/echo"}')
    assert r.outcome is Outcome.PASSED, r.error_message
    assert abs(r.metrics["cert_expiry_days"] - 200) < 1 and r.phases["tls_ms"] > 0
    assert "not trusted" in failed(untrusted, ErrorClass.TLS)


async def test_refused_port_is_connect() -> None:
    from tests.support.faults import closed_port

    async with run_context() as ctx:
        r = await ws(ctx, f'websocket: {{url: "ws://127.0.0.1:{closed_port()}/x"}}')
    assert "cannot connect" in failed(r, ErrorClass.CONNECT)


def test_config_mistakes_are_located() -> None:
    for text, message in [
        ("websocket: {url: 'ftp://x'}", "'url' must start with ws:// or wss://"),
        ("websocket: {url: 'ws://x', expect_message: {}}", "'expect_message' has no condition"),
        ("websocket: {url: 'ws://x', expect_message: {json: {'$[': {exists: true}}}}", "bad JSONPath"),
        ("websocket: {url: 'ws://x', send: {a: 1}}", "'send' must be a list of strings"),
    ]:
        _, problems = parse_step("websocket", text)
        assert any(message in str(p) for p in problems.items), (text, [str(p) for p in problems.items])
