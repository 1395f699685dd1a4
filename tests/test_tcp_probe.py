"""The tcp step against real servers on 127.0.0.1: a banner server, a line protocol, TLS, silence, a refused port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from probes.net.tcp.probe import TcpProbe
from qos_agent.model import ErrorClass, Outcome, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.certs import Pki, tls_server
from tests.support.faults import closed_port, silent_server
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step


@asynccontextmanager
async def line_server(banner: bytes = b"220 mail.test ESMTP ready\r\n") -> AsyncIterator[int]:
    """Sends a banner, then answers PING with +PONG and anything else with -ERR (Redis-like)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(banner)
            await writer.drain()
            while line := await reader.readline():
                writer.write(b"+PONG\r\n" if line.strip() == b"PING" else b"-ERR unknown command\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        async with asyncio.timeout(2):
            await server.wait_closed()


async def tcp(ctx: RunContext, text: str, timeout_s: float = 5.0) -> StepResult:
    spec, problems = parse_step("tcp", text)
    assert not problems, [str(p) for p in problems.sorted()]
    return await run_step(TcpProbe(), make_step(spec, kind="tcp", timeout_s=timeout_s), ctx)


def failed(r: StepResult, error: ErrorClass) -> str:
    assert r.outcome is Outcome.FAILED, r
    assert r.error is error, (r.error, r.error_message)
    return r.error_message


async def test_banner_check_passes_with_phases() -> None:
    async with line_server() as port, run_context({"port": str(port)}) as ctx:
        r = await tcp(ctx, 'tcp: {host: localhost, port: "{{ port }}", expect_regex: "^220 "}')
    assert r.outcome is Outcome.PASSED, r.error_message
    assert r.phases["dns_ms"] > 0 and r.phases["connect_ms"] > 0 and r.phases["ttfb_ms"] > 0
    assert "tls_ms" not in r.phases and r.bytes > 0 and r.url == f"tcp://localhost:{port}"


async def test_send_and_expect_bytes_like_redis_ping() -> None:
    async with line_server() as port, run_context() as ctx:
        ok = await tcp(ctx, f'tcp: {{host: "127.0.0.1:{port}", send: "PING\\r\\n", expect_bytes: "+PONG"}}')
        bad = await tcp(ctx, f'tcp: {{host: 127.0.0.1, port: {port}, send: "PONG\\r\\n", expect_bytes: "+PONG", '
                             'read_timeout: 300ms}')
    assert ok.outcome is Outcome.PASSED, ok.error_message
    msg = failed(bad, ErrorClass.TIMEOUT)
    assert "expect_bytes '+PONG': no match within read_timeout 0.3s" in msg and "-ERR" in msg


async def test_connection_closed_before_the_match_is_an_assertion() -> None:
    async def bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"421 too busy\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(bye, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with run_context() as ctx:
            r = await tcp(ctx, f'tcp: {{host: 127.0.0.1, port: {port}, expect_regex: "^220 "}}')
    finally:
        server.close()
    msg = failed(r, ErrorClass.ASSERTION)
    assert "the server closed the connection after 14 bytes" in msg and "421 too busy" in msg


async def test_tls_tcp_reports_certificate_facts() -> None:
    pki = Pki()
    leaf = pki.leaf(days=3)
    async with tls_server(leaf, banner=b"* OK IMAP ready\r\n") as port, run_context() as ctx:
        ok = await tcp(ctx, f'tcp: {{host: localhost, port: {port}, tls: true, ca_file: {pki.ca_file}, '
                            'expect_bytes: "* OK"}')
        expiring = await tcp(ctx, f'tcp: {{host: localhost, port: {port}, tls: true, ca_file: {pki.ca_file}}}\n'
                                  'expect: {cert_days_left: 14}')
        untrusted = await tcp(ctx, f"tcp: {{host: localhost, port: {port}, tls: true}}")
    assert ok.outcome is Outcome.PASSED, ok.error_message
    assert ok.phases["tls_ms"] > 0 and 2 < ok.metrics["cert_expiry_days"] < 3.01
    assert ok.text["cert_subject"] == "localhost"
    assert "cert_days_left: 14" in failed(expiring, ErrorClass.TLS)
    assert "untrusted chain" in failed(untrusted, ErrorClass.TLS)


async def test_silent_server_times_out_naming_the_wait() -> None:
    async with silent_server() as port, run_context() as ctx:
        r = await tcp(ctx, f'tcp: {{host: 127.0.0.1, port: {port}, expect_bytes: "220", read_timeout: 200ms}}')
    assert "nothing arrived" in failed(r, ErrorClass.TIMEOUT)
    assert 150 < r.duration_ms < 2000


async def test_the_step_timeout_bounds_a_long_read_timeout() -> None:
    async with silent_server() as port, run_context() as ctx:
        r = await tcp(ctx, f'tcp: {{host: 127.0.0.1, port: {port}, expect_bytes: "220", read_timeout: 30s}}',
                      timeout_s=0.3)
    assert "timed out after 0.3s (waiting for the answer)" in failed(r, ErrorClass.TIMEOUT)


async def test_refused_port_is_connect() -> None:
    async with run_context() as ctx:
        r = await tcp(ctx, f"tcp: {{host: 127.0.0.1, port: {closed_port()}}}")
    assert "connection refused" in failed(r, ErrorClass.CONNECT)


@pytest.mark.parametrize(("text", "message"), [
    ("tcp: {host: x}", "tcp needs a port"),
    ("tcp: {host: x, port: 70000}", "'port' must be a port number 1..65535"),
    ('tcp: {host: x, port: 1, expect_regex: "(", send: a}', "bad regular expression"),
    ("tcp: {host: x, port: 1, expect_bytes: a, expect_regex: b}", "both 'expect_bytes' and 'expect_regex'"),
    ("tcp: {host: x, port: 1, read_timeout: 5}", "'read_timeout' is not a duration"),
    ("tcp: {host: x, port: 1, sned: a}", "did you mean 'send'?"),
])
def test_config_mistakes_are_located(text: str, message: str) -> None:
    _, problems = parse_step("tcp", text)
    assert any(message in str(p) and str(p).startswith("journeys.yaml:1:") for p in problems.items), \
        [str(p) for p in problems.items]


async def test_a_secret_in_what_the_server_sent_is_masked() -> None:
    async with line_server(banner=b"-ERR bad token Sup3rS3cret\r\n") as port, \
            run_context({"token": "Sup3rS3cret"}, secrets=["Sup3rS3cret"]) as ctx:
        r = await tcp(ctx, f'tcp: {{host: 127.0.0.1, port: {port}, send: "AUTH {{{{ token }}}}\\r\\n", '
                           'expect_bytes: "+OK", read_timeout: 300ms}')
    msg = failed(r, ErrorClass.TIMEOUT)
    assert "bad token" in msg and "Sup3rS3cret" not in msg
