"""The grpc step against a real grpcio server with grpcio-health-checking (SERVING, then NOT_SERVING).

grpcio is an optional extra; the dev extra installs it. Under CI=true its absence fails the test.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from probes.grpc.probe import GrpcProbe
from qos_agent.config.loader import load_config
from qos_agent.errors import ConfigError
from qos_agent.model import ErrorClass, Outcome, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.certs import Pki
from tests.support.components import missing
from tests.support.faults import closed_port
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step

try:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
except ImportError:  # pragma: no cover - the dev extra installs it
    missing("grpcio (the dev extra: pip install -e '.[dev]')", "make setup")


@asynccontextmanager
async def health_server(tls: Any = None) -> AsyncIterator[tuple[int, Any]]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        cert, key = tls.files()
        creds = grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    await servicer.set("shop.Orders", health_pb2.HealthCheckResponse.SERVING)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    try:
        yield port, servicer
    finally:
        await server.stop(grace=None)


async def check(ctx: RunContext, text: str, timeout_s: float = 5.0) -> StepResult:
    spec, problems = parse_step("grpc", text)
    assert not problems, [str(p) for p in problems.sorted()]
    return await run_step(GrpcProbe(), make_step(spec, kind="grpc", timeout_s=timeout_s), ctx)


def failed(r: StepResult, error: ErrorClass) -> str:
    assert r.outcome is Outcome.FAILED, r
    assert r.error is error, (r.error, r.error_message)
    return r.error_message


async def test_serving_then_not_serving() -> None:
    async with health_server() as (port, servicer), run_context({"port": str(port)}) as ctx:
        ok = await check(ctx, 'grpc: {target: "127.0.0.1:{{ port }}", service: shop.Orders}')
        await servicer.set("shop.Orders", health_pb2.HealthCheckResponse.NOT_SERVING)
        down = await check(ctx, 'grpc: {target: "127.0.0.1:{{ port }}", service: shop.Orders}')
        expected_down = await check(ctx, 'grpc: {target: "127.0.0.1:{{ port }}", service: shop.Orders}\n'
                                         "expect: {status: NOT_SERVING}")
        unknown = await check(ctx, 'grpc: {target: "127.0.0.1:{{ port }}", service: shop.Nope}')
    assert ok.outcome is Outcome.PASSED, ok.error_message
    assert ok.text == {"grpc_status": "SERVING"} and ok.phases["connect_ms"] > 0 and ok.phases["ttfb_ms"] > 0
    assert failed(down, ErrorClass.STATUS) == "health of shop.Orders: NOT_SERVING, expected SERVING"
    assert expected_down.outcome is Outcome.PASSED
    assert "unknown" in failed(unknown, ErrorClass.STATUS)


async def test_tls_health_check() -> None:
    pki = Pki()
    leaf = pki.leaf(days=200)
    async with health_server(tls=leaf) as (port, _), run_context() as ctx:
        ok = await check(ctx, f"grpc: {{target: 'localhost:{port}', tls: true, ca_file: {pki.ca_file}}}")
        untrusted = await check(ctx, f"grpc: {{target: 'localhost:{port}', tls: true}}")
    assert ok.outcome is Outcome.PASSED, ok.error_message
    assert failed(untrusted, ErrorClass.CONNECT)


async def test_refused_port_is_connect() -> None:
    async with run_context() as ctx:
        r = await check(ctx, f"grpc: {{target: '127.0.0.1:{closed_port()}'}}")
    assert "cannot connect to 127.0.0.1" in failed(r, ErrorClass.CONNECT)


@pytest.fixture
def without_grpc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [m for m in sys.modules if m == "grpc" or m.startswith(("grpc.", "grpc_health"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc -> ImportError
    yield


def test_without_grpcio_a_journey_gets_a_located_error_saying_how_to_install(without_grpc: None,
                                                                              tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text("version: 1\njourneys:\n  - name: j\n    steps:\n      - name: s\n"
                    "        grpc: {target: '127.0.0.1:50051'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (f"{path}:6:9: the grpc step needs grpcio, which is not installed "
                               "(install it: pip install 'qos-agent[grpc]' (grpcio and grpcio-health-checking))")
