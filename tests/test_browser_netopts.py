"""Browser steps' networking options in real Chromium: through a forward proxy, and mTLS with a client
certificate (a server that rejects a missing one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from probes.browser.probe import BrowserProbe
from qos_agent.model import Outcome
from tests.support import browser as support
from tests.support.browser import run_browser
from tests.support.certs import Pki
from tests.support.probe_ctx import run_context
from tests.support.proxy import forward_proxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

browser_probe = support.browser_probe  # the shared fixture, used by name
site = support.site  # the shared fixture, used by name


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_browser_goes_through_the_proxy(browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    port = site.rsplit(":", 1)[1]
    # shop.fake resolves only inside the proxy: the page loads only if Chromium really used it
    async with forward_proxy(hosts={"shop.fake": "127.0.0.1"}) as proxy, \
            run_context({"proxy": proxy.url}, state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, f'browser:\n  actions:\n    - goto: "http://shop.fake:{port}/tiny"\n'
                                             '    - expect_text: {selector: "#t", text: tiny}\n'
                                             '  proxy: "{{ proxy }}"\n', ctx, timeout_s=15)
    assert r.outcome is Outcome.PASSED, r.error_message
    assert f"GET http://shop.fake:{port}/tiny HTTP/1.1" in proxy.seen


@asynccontextmanager
async def mtls_site(pki: Pki) -> AsyncIterator[int]:
    async def page(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        who = dict(x[0] for x in peer["subject"])["commonName"] if peer else "nobody"
        return web.Response(text=f"<p id=who>{who}</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/who", page)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.leaf().server_context(client_ca=pki.ca_file)).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_browser_sends_the_client_certificate(browser_probe: BrowserProbe, tmp_path: Path) -> None:
    pki = Pki()
    cert, key = pki.leaf(names=("agent-1",), client=True).files()
    async with mtls_site(pki) as port:
        goto = f'  actions:\n    - goto: "https://localhost:{port}/who"\n    - expect_text: {{selector: "#who", text: agent-1}}\n'
        async with run_context(state_dir=tmp_path) as ctx:
            ok = await run_browser(browser_probe, f"browser:\n{goto}  client_cert: {cert}\n  client_key: {key}\n"
                                                  "  verify_tls: false\n", ctx, timeout_s=15)
        async with run_context(state_dir=tmp_path) as ctx:
            refused = await run_browser(browser_probe, f"browser:\n{goto}  verify_tls: false\n", ctx, timeout_s=8)
    assert ok.outcome is Outcome.PASSED, ok.error_message
    assert refused.outcome is Outcome.FAILED
