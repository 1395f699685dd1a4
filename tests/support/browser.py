"""Fixtures for browser tests: a small local site, one real headless Chromium per test module.

Browser tests share their module's event loop so the Playwright driver and Chromium start once:

    pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
    from tests.support.browser import browser_probe, site  # noqa: F401
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web

from probes.browser.probe import BrowserProbe
from qos_agent.model import Step, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.probe_ctx import make_step, parse_step, run_step

FORM = """<!doctype html><html><head><title>Form</title></head><body>
<h1 id="title">Form page</h1>
<input id="name"> <input id="secret" type="text">
<select id="plan"><option value="free">Free</option><option value="pro">Pro</option></select>
<input id="q" onkeydown="if (event.key === 'Enter') document.getElementById('out').textContent = 'searched ' + this.value">
<button id="go" onclick="document.getElementById('out').textContent = 'clicked ' +
  document.getElementById('plan').value">Go</button>
<p id="out"></p><p id="gone">going</p><p id="order">  o-42  </p>
<form id="login" method="post" action="/submit"><input name="user" id="user">
<input name="password" id="password" type="password"><button id="send" type="submit">Send</button></form>
<script>
setTimeout(() => { const p = document.createElement('p'); p.id = 'late'; p.textContent = 'late';
  document.body.appendChild(p); document.getElementById('gone').remove(); }, 300);
</script></body></html>"""

COOKIES = """<!doctype html><html><body><p id="seen"></p>
<script>document.getElementById('seen').textContent = document.cookie;
document.cookie = 'from_browser=b1; path=/';</script></body></html>"""

BROKEN = """<!doctype html><html><body><h1>Broken</h1><img src="/missing.png">
<script>throw new Error('boom in bundle');</script></body></html>"""

TINY = "<!doctype html><html><body><h1 id=t>tiny</h1></body></html>"


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


async def _submit(request: web.Request) -> web.Response:
    form = await request.post()
    return _html(f"<!doctype html><html><body><p id='thanks'>thanks {form.get('user', '')}</p></body></html>")


async def _set_cookie(request: web.Request) -> web.Response:
    resp = web.json_response({"ok": True})
    resp.set_cookie("from_http", "h1", path="/")
    return resp


async def _echo_cookies(request: web.Request) -> web.Response:
    return web.json_response(dict(request.cookies))


async def _echo_headers(request: web.Request) -> web.Response:
    return _html(f"<p id='region'>{request.headers.get('X-QoS-Region', '')}</p>")


def site_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/form", _page(FORM))
    app.router.add_get("/cookies", _page(COOKIES))
    app.router.add_get("/broken", _page(BROKEN))
    app.router.add_get("/tiny", _page(TINY))
    app.router.add_get("/error", _page("<p>down</p>", status=503))
    app.router.add_post("/submit", _submit)
    app.router.add_get("/set-cookie", _set_cookie)
    app.router.add_get("/echo-cookies", _echo_cookies)
    app.router.add_get("/headers", _echo_headers)
    return app


def _page(text: str, status: int = 200) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return _html(text, status)

    return handler


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site() -> AsyncIterator[str]:
    """The local test site on an ephemeral 127.0.0.1 port; its base URL."""
    runner = web.AppRunner(site_app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    s = web.TCPSite(runner, "127.0.0.1", 0)
    await s.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser_probe() -> AsyncIterator[BrowserProbe]:
    """One BrowserProbe (one real Chromium) for the module, tracing as `check` does (every run, kept on
    failure); closed at its end."""
    probe = BrowserProbe()
    probe.one_shot = True
    await probe.start()
    try:
        yield probe
    finally:
        await probe.close()


def browser_step(text: str, name: str = "b", timeout_s: float = 5.0) -> Step:
    """A browser step from YAML (`browser:` and its actions); fails the test on config problems."""
    spec, problems = parse_step("browser", f"name: {name}\n{text}")
    assert not problems, [str(p) for p in problems.sorted()]
    return make_step(spec, name=name, kind="browser", timeout_s=timeout_s)


async def run_browser(probe: BrowserProbe, text: str, ctx: RunContext, timeout_s: float = 5.0,
                      name: str = "b") -> StepResult:
    return await run_step(probe, browser_step(text, name=name, timeout_s=timeout_s), ctx)


def zip_bytes(path: str | Path) -> bytes:
    """Every file of a zip, concatenated (after checking the zip opens and is sound)."""
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        return b"".join(z.read(n) for n in z.namelist())


def trace_actions(path: str | Path) -> list[dict[str, Any]]:
    """The `before` events (actions) recorded in a trace zip."""
    out = []
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith(".trace"):
                for line in z.read(name).decode().splitlines():
                    event = json.loads(line)
                    if event.get("type") == "before":
                        out.append(event)
    return out


def rss_kb(pids: Iterable[int]) -> int:
    """Resident memory of these processes and all their descendants, in kB (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total
