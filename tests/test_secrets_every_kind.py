"""Secrets are masked by the core for every step kind, not by each probe (issue 22).

Real servers on 127.0.0.1 echo back what they were sent: a websocket upgrade's Authorization
header (from `{{ tok }}`, learnt at run time) and its URL userinfo (sent as Basic credentials), a
tcp `send`, gRPC metadata, and the Basic credentials Chromium sends from a `goto` URL's userinfo.
Every step then fails quoting what came back. `qos-agent check` writes the SQLite store, JSON lines,
JUnit, its JSON report and a screenshot whose name was a secret; every spelling of every secret is
grepped for in all of it, file names included.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web

from tests.support.cli import qos
from tests.support.components import missing, needs
from tests.test_secrets import spellings
from tests.test_secrets_e2e import texts_under

try:
    import grpc
    from grpc_health.v1 import health_pb2_grpc
except ImportError:  # pragma: no cover - the dev extra installs it
    missing("grpcio (the dev extra: pip install -e '.[dev]')", "make setup")

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs(Path("/usr/bin/chromium").exists(), "Debian chromium")]

TOKEN = "tok-5f2a9c17"  # extracted without `secret: true`, then sent as a Bearer header: masked all the same
WS_PASS = "wspass-77aa"  # ${WS_PASS}: not a secret by its name; masked because it is URL userinfo
WEB_PASS = "webpass-99bb"
ECHO_TOKEN = "echo-token-3141"  # ${ECHO_TOKEN}: a secret by its name
SHOT_TOKEN = "shot-token-2718"  # a screenshot named by a secret: the file is renamed


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


async def _token(request: web.Request) -> web.Response:
    return web.json_response({"tok": TOKEN})


async def _echo_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(f"auth={request.headers.get('Authorization', 'none')} and more")
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(f"you said {msg.data}")
    return ws


async def _page(request: web.Request) -> web.Response:
    auth = request.headers.get("Authorization")
    if auth is None:  # ask, so Chromium sends the credentials of the URL
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="shop"'})
    return web.Response(text=f'<!doctype html><html><body><p id="auth">{auth}</p></body></html>',
                        content_type="text/html")


async def _echo_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        data = await reader.read(1024)
        writer.write(b"+OK you sent " + data)
        await writer.drain()
        await reader.read(100)  # until the step hangs up
    finally:
        writer.close()


class DenyingHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Refuses every check, quoting the metadata it got (as a careless server does)."""

    async def Check(self, request: Any, context: Any) -> Any:
        metadata = dict(context.invocation_metadata())
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"denied for {metadata.get('authorization')}")


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[dict[str, int]]:
    app = web.Application()
    app.add_routes([web.get("/token", _token), web.get("/ws", _echo_ws), web.get("/page", _page)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    tcp = await asyncio.start_server(_echo_tcp, "127.0.0.1", 0)
    rpc = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(DenyingHealth(), rpc)
    rpc_port = rpc.add_insecure_port("127.0.0.1:0")
    await rpc.start()
    try:
        yield {"web": runner.addresses[0][1], "tcp": tcp.sockets[0].getsockname()[1], "grpc": rpc_port}
    finally:
        await rpc.stop(None)
        tcp.close()
        await runner.cleanup()


JOURNEYS = """\
version: 1
agent: {{state_dir: state, name: kinds, listen: "off"}}
variables: {{web: "127.0.0.1:{web}"}}
exporters:
  - {{type: sqlite}}
  - {{type: jsonl, path: results.jsonl}}
journeys:
  - name: every-kind
    steps:
      - name: token
        http: {{url: "http://{{{{ web }}}}/token"}}
        extract: {{tok: {{json: "$.tok"}}}}
      - name: ws-header
        always_run: true
        websocket:
          url: "ws://{{{{ web }}}}/ws"
          headers: {{Authorization: "Bearer {{{{ tok }}}}"}}
          expect_message: {{contains: never-there}}
          max_messages: 1
      - name: ws-userinfo
        always_run: true
        websocket:
          url: "ws://wsuser:${{WS_PASS}}@{{{{ web }}}}/ws"
          expect_message: {{contains: never-there}}
          max_messages: 1
      - name: tcp-send
        always_run: true
        tcp: {{host: 127.0.0.1, port: {tcp}, send: "AUTH ${{ECHO_TOKEN}}", expect_bytes: never-there,
               read_timeout: 1s}}
      - name: grpc-metadata
        always_run: true
        grpc: {{target: "127.0.0.1:{grpc}", metadata: {{authorization: "Bearer {{{{ tok }}}}"}}}}
      - name: browser-userinfo
        always_run: true
        timeout: 8s
        browser:
          - goto: "http://webuser:${{WEB_PASS}}@{{{{ web }}}}/page"
          - screenshot: ${{SHOT_TOKEN}}
          - expect_text: {{selector: "#auth", text: never-there, timeout: 1s}}
"""


async def test_no_kind_leaks_what_it_sent_or_what_came_back(tmp_path: Path, servers: dict[str, int]) -> None:
    (tmp_path / "journeys.yaml").write_text(JOURNEYS.format(**servers))
    env = {"WS_PASS": WS_PASS, "WEB_PASS": WEB_PASS, "ECHO_TOKEN": ECHO_TOKEN, "SHOT_TOKEN": SHOT_TOKEN}
    checked = await asyncio.to_thread(qos, "check", "journeys.yaml", "--format", "json", "--junit", "out.xml",
                                      env=env, cwd=tmp_path, timeout=120)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    steps = {s["name"]: s for j in report["journeys"] for s in j["steps"]}
    # Each step really failed quoting what came back, so the grep below means something.
    assert steps["token"]["outcome"] == "passed"
    for name in ("ws-header", "ws-userinfo", "tcp-send", "grpc-metadata", "browser-userinfo"):
        assert steps[name]["outcome"] == "failed", (name, steps[name])
    assert "got 'auth=*** and more'" in steps["ws-header"]["error_message"]
    assert "auth=Basic ***" in steps["ws-userinfo"]["error_message"]
    assert "AUTH ***" in steps["tcp-send"]["error_message"]
    assert "denied for ***" in steps["grpc-metadata"]["error_message"]
    assert "(Actual value: Basic ***)" in steps["browser-userinfo"]["error_message"]  # Chromium sent them
    artifacts = {"check stdout": checked.stdout, "check stderr": checked.stderr,
                 "junit": (tmp_path / "out.xml").read_text(encoding="utf-8"), **texts_under(tmp_path / "state")}
    shots = [name for name in artifacts if name.startswith("name of") and name.endswith(".png")]
    assert any("masked" in shot for shot in shots), shots  # the screenshot named by a secret, renamed
    secrets = {"token": TOKEN, "ws password": WS_PASS, "ws basic": basic("wsuser", WS_PASS),
               "web password": WEB_PASS, "web basic": basic("webuser", WEB_PASS), "echo token": ECHO_TOKEN,
               "shot token": SHOT_TOKEN}
    leaks = [(what, form_name, where) for what, secret in secrets.items()
             for form_name, form in spellings(secret).items() for where, text in artifacts.items() if form in text]
    assert leaks == []
