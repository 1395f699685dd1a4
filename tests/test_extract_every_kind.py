"""`extract:` works on every built-in kind that yields something, through the real runner (issue 22:
it was silently ignored on tcp, dns, tls, websocket and grpc, and the next step sent `{{ tok }}`).

One journey against real servers on 127.0.0.1 (a tcp banner, dnsmasq, a TLS server, a websocket,
a gRPC health server) extracts from each kind, then an http step sends every value to a recording
server: what arrives is what each kind yielded. A source a kind does not yield is a located error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from qos_agent.config.loader import load_config
from qos_agent.errors import ConfigError
from qos_agent.model import Outcome
from qos_agent.runloop.runner import Runner
from tests.support.certs import Pki, tls_server
from tests.support.components import missing
from tests.support.dnsmasq import dnsmasq
from tests.support.faults import http_server

try:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
except ImportError:  # pragma: no cover - the dev extra installs it
    missing("grpcio (the dev extra: pip install -e '.[dev]')", "make setup")


async def _banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 ready session=s-91f2\r\n")
    await writer.drain()
    await reader.read(100)  # until the step hangs up
    writer.close()
    await writer.wait_closed()


async def _ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str('{"type": "hello"}')
    await ws.send_str('{"type": "ack", "order": "o-777"}')
    await ws.close()
    return ws


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[dict[str, int]]:
    tcp = await asyncio.start_server(_banner, "127.0.0.1", 0)
    app = web.Application()
    app.add_routes([web.get("/ws", _ws)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rpc = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, rpc)
    rpc_port = rpc.add_insecure_port("127.0.0.1:0")
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await rpc.start()
    pki = Pki()
    try:
        async with tls_server(pki.leaf()) as tls_port:
            with dnsmasq() as dns_port:
                yield {"tcp": tcp.sockets[0].getsockname()[1], "ws": runner.addresses[0][1], "grpc": rpc_port,
                       "tls": tls_port, "dns": dns_port}
    finally:
        await rpc.stop(None)
        tcp.close()
        await tcp.wait_closed()
        await runner.cleanup()


JOURNEY = """\
version: 1
agent: {{state_dir: state}}
journeys:
  - name: every-kind
    steps:
      - name: banner
        tcp: {{host: 127.0.0.1, port: {tcp}}}
        extract: {{session: {{regex: "session=([a-z0-9-]+)"}}}}
      - name: resolve
        dns: {{name: _verify.shop.test, type: TXT, server: "127.0.0.1:{dns}"}}
        extract: {{txt: {{regex: "token=(\\\\w+)"}}, rcode: {{field: rcode}}}}
      - name: cert
        tls: {{host: 127.0.0.1, port: {tls}, verify: false}}
        extract: {{issuer: {{field: cert_issuer}}}}
      - name: live
        websocket: {{url: "ws://127.0.0.1:{ws}/ws", expect_message: {{json: {{"$.type": {{equals: ack}}}}}}}}
        extract: {{order: {{json: "$.order"}}}}
      - name: health
        grpc: {{target: "127.0.0.1:{grpc}"}}
        extract: {{serving: {{field: grpc_status}}}}
      - name: report
        http:
          url: "{base}/ok"
          params: {{s: "{{{{ session }}}}", t: "{{{{ txt }}}}", r: "{{{{ rcode }}}}", i: "{{{{ issuer }}}}",
                    o: "{{{{ order }}}}", g: "{{{{ serving }}}}"}}
"""


async def test_every_kind_feeds_the_next_steps(tmp_path: Path, servers: dict[str, int]) -> None:
    async with http_server() as srv:
        (tmp_path / "journeys.yaml").write_text(JOURNEY.format(base=srv.base, **servers))
        config = load_config(tmp_path / "journeys.yaml", env={})
        runner = Runner(config)
        try:
            (result,) = await runner.run(config.journeys[0])
        finally:
            await runner.close()
    assert result.outcome is Outcome.PASSED, [(s.step, s.error_message) for s in result.steps]
    query = dict(srv.requests[-1]["query"])
    assert query.pop("i") == "QoS Test Intermediate" and query == {
        "s": "s-91f2", "t": "abc123", "r": "NOERROR", "o": "o-777", "g": "SERVING"}


def test_a_source_a_kind_does_not_yield_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text("""\
version: 1
journeys:
  - name: wrong
    steps:
      - name: cert
        tls: {host: 127.0.0.1, port: 443}
        extract: {a: {json: "$.x"}, b: {field: cert_serial}}
      - name: banner
        tcp: {host: 127.0.0.1, port: 25}
        extract: {c: {cookie: sid}}
""")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "journeys.yaml", env={})
    problems = [str(p) for p in info.value.problems]
    where = str(tmp_path / "journeys.yaml")
    assert problems == [
        f"{where}:7:29: tls steps cannot extract with 'json' (they yield no body) (use one of: field)",
        f"{where}:7:48: tls steps report no field 'cert_serial' (did you mean 'cert_issuer'? valid: cert_subject,"
        " cert_issuer, tls_version, tls_cipher)",
        f"{where}:10:31: tcp steps cannot extract with 'cookie' (they yield the bytes received) (use one of: json,"
        " regex)",
    ]
