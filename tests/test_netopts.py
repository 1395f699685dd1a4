"""Networking options of http steps against real servers: a forward proxy (explicit and from the
environment), an mTLS server that rejects a missing client certificate, pinned addresses, IP version."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from probes.http.probe import HttpProbe
from qos_agent.model import ErrorClass, Outcome, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.certs import Pki
from tests.support.faults import http_server
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step
from tests.support.proxy import forward_proxy


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


async def get(ctx: RunContext, text: str) -> StepResult:
    spec, problems = parse_step("http", text)
    assert not problems, [str(p) for p in problems.sorted()]
    return await run_step(HttpProbe(), make_step(spec), ctx)


async def test_explicit_proxy_for_http_and_https(pki: Pki) -> None:
    leaf = pki.leaf()
    async with forward_proxy() as proxy, http_server("localhost") as plain, \
            http_server("localhost", tls=leaf) as tls, \
            run_context({"proxy": proxy.url, "plain": plain.base, "tls": tls.base}) as ctx:
        a = await get(ctx, 'http: {url: "{{ plain }}/ok", proxy: "{{ proxy }}"}')
        b = await get(ctx, f'http: {{url: "{{{{ tls }}}}/ok", proxy: "{{{{ proxy }}}}", ca_file: {pki.ca_file}}}')
    assert a.outcome is b.outcome is Outcome.PASSED, (a.error_message, b.error_message)
    assert proxy.seen == [f"GET {plain.base}/ok HTTP/1.1", f"CONNECT localhost:{tls.port} HTTP/1.1"]
    assert b.text["cert_subject"] == "localhost" and b.phases["tls_ms"] > 0


async def test_proxy_from_the_environment_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async with forward_proxy() as proxy, http_server("localhost") as srv, run_context({"base": srv.base}) as ctx:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        via = await get(ctx, 'http: {url: "{{ base }}/ok"}')
    async with run_context({"base": srv.base}) as ctx2, http_server("localhost") as srv2:
        monkeypatch.setenv("NO_PROXY", "localhost")
        direct = await get(ctx2, f'http: {{url: "{srv2.base}/ok"}}')
    assert via.outcome is direct.outcome is Outcome.PASSED, (via.error_message, direct.error_message)
    assert proxy.seen == [f"GET {srv.base}/ok HTTP/1.1"]


async def test_a_dead_proxy_is_a_connect_failure() -> None:
    from tests.support.faults import closed_port

    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        r = await get(ctx, f'http: {{url: "{{{{ base }}}}/ok", proxy: "http://127.0.0.1:{closed_port()}"}}')
    assert r.outcome is Outcome.FAILED and r.error is ErrorClass.CONNECT, r.error_message


async def _mtls_app(pki: Pki) -> tuple[web.AppRunner, int]:
    async def who(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        return web.json_response({"client": dict(x[0] for x in peer["subject"])["commonName"] if peer else ""})

    app = web.Application()
    app.add_routes([web.get("/who", who)])
    runner = web.AppRunner(app, shutdown_timeout=1, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.leaf().server_context(client_ca=pki.ca_file))
    await site.start()
    return runner, runner.addresses[0][1]


async def test_mtls_server_rejects_a_missing_client_certificate_and_accepts_ours(pki: Pki) -> None:
    client = pki.leaf(names=("agent-1",), client=True)
    cert, key = client.files()
    pem_cert = Path(cert).read_text()
    runner, port = await _mtls_app(pki)
    try:
        async with run_context({"base": f"https://localhost:{port}"}) as ctx:
            without = await get(ctx, f'http: {{url: "{{{{ base }}}}/who", ca_file: {pki.ca_file}}}')
        async with run_context({"base": f"https://localhost:{port}"}) as ctx:
            with_file = await get(ctx, f'http: {{url: "{{{{ base }}}}/who", ca_file: {pki.ca_file}, '
                                       f'client_cert: {cert}, client_key: {key}}}\n'
                                       'expect: {json: {"$.client": agent-1}}')
        async with run_context({"base": f"https://localhost:{port}"}) as ctx:
            indented = "\n".join("    " + line for line in pem_cert.strip().splitlines())
            with_pem = await get(ctx, f'http:\n  url: "{{{{ base }}}}/who"\n  ca_file: {pki.ca_file}\n'
                                      f"  client_key: {key}\n  client_cert: |\n{indented}\n")
    finally:
        await runner.cleanup()
    # TLS 1.3: the server refuses after the client finished its handshake, so the client sees the
    # connection closed while waiting for the response (TLS 1.2 would fail in the handshake: tls)
    assert without.outcome is Outcome.FAILED and without.error in (ErrorClass.TLS, ErrorClass.CONNECT), without
    assert with_file.outcome is Outcome.PASSED, with_file.error_message
    assert with_pem.outcome is Outcome.PASSED, with_pem.error_message


async def test_resolve_pins_a_fake_name_to_loopback_keeping_sni_and_host(pki: Pki) -> None:
    leaf = pki.leaf(names=("shop.fake",))
    async with http_server("shop.fake", tls=leaf) as srv, run_context({"base": srv.base}) as ctx:
        r = await get(ctx, f'http: {{url: "{{{{ base }}}}/ok", ca_file: {pki.ca_file}, '
                           "resolve: {shop.fake: 127.0.0.1}}")
        unpinned = await get(ctx, f'http: {{url: "{{{{ base }}}}/ok", ca_file: {pki.ca_file}}}')
    assert r.outcome is Outcome.PASSED, r.error_message
    assert srv.requests[0]["headers"]["Host"] == f"shop.fake:{srv.port}"
    assert r.text["cert_subject"] == "shop.fake"
    assert unpinned.error is ErrorClass.DNS, unpinned.error_message


async def test_ip_version_limits_the_address_family() -> None:
    async with http_server("localhost") as srv, run_context({"base": srv.base}) as ctx:
        v4 = await get(ctx, 'http: {url: "{{ base }}/ok", ip_version: 4}')
        v6 = await get(ctx, 'http: {url: "{{ base }}/ok", ip_version: 6}')
    assert v4.outcome is Outcome.PASSED, v4.error_message
    # the server listens on 127.0.0.1 only: over IPv6, localhost is ::1 (refused) or has no address
    assert v6.outcome is Outcome.FAILED and v6.error in (ErrorClass.CONNECT, ErrorClass.DNS), v6


@pytest.mark.parametrize(("text", "message"), [
    ("http: {url: 'http://x', proxy: 'socks5://p:1080'}", "'proxy' must be an http:// or https:// URL"),
    ("http: {url: 'http://x', client_cert: /nonexistent.pem}", "'client_cert' file not found: /nonexistent.pem"),
    ("http: {url: 'http://x', ca_file: missing.pem}", "'ca_file' file not found"),
    ("http: {url: 'http://x', ip_version: 5}", "'ip_version' is 5, not 4 or 6"),
    ("http: {url: 'http://x', resolve: {a.test: not-an-ip}}", "'resolve.a.test' is 'not-an-ip', not an IP address"),
    ("http: {url: 'http://x', client_key: /etc/hostname}", "'client_key' without 'client_cert'"),
    ("http: {url: 'http://x'}\nexpect: {cert_days_left: -1}", "'cert_days_left' must be a number of days >= 0"),
])
def test_config_mistakes_are_located(text: str, message: str) -> None:
    _, problems = parse_step("http", text)
    assert any(message in str(p) and str(p).startswith("journeys.yaml:") for p in problems.items), \
        [str(p) for p in problems.items]
