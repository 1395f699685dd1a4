"""Every browser action against a real headless Chromium, and how failing ones are reported."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from probes.browser.probe import BrowserProbe
from qos_agent.model import ErrorClass, Outcome
from tests.support import browser as support
from tests.support.browser import run_browser
from tests.support.probe_ctx import run_context

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

browser_probe = support.browser_probe  # the shared fixture, used by name
site = support.site  # the shared fixture, used by name


async def test_every_action_passes_and_measures(browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    steps = """browser:
  - goto: "{{ base }}/form"
  - goto: {url: "{{ base }}/form", wait_until: domcontentloaded}
  - expect_url: "{{ base }}/form"
  - expect_url: {regex: "/fo+rm$"}
  - fill: {selector: "#name", value: "{{ who }}"}
  - select: {selector: "#plan", value: pro}
  - click: "#go"
  - expect_text: {selector: "#out", text: "clicked pro"}
  - press: {selector: "#q", key: Enter}
  - expect_text: {selector: "#out", regex: "^searched $"}
  - wait_for: "#late"
  - wait_for: {selector: "#gone", state: detached, timeout: 2s}
  - wait_for: {selector: "#nothing", state: hidden}
  - screenshot: after-form
  - extract: {selector: "#order", name: order_id}
  - fill: {selector: "#q", value: "{{ order_id }}"}
  - press: {selector: "#q", key: Enter}
  - expect_text: {selector: "#out", text: "searched o-42"}
"""
    async with run_context(variables={"base": site, "who": "ann"}, state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, steps, ctx, timeout_s=15)
    assert r.outcome is Outcome.PASSED, r.error_message
    assert r.extracted == {"order_id": "o-42"}
    shot = Path(r.artifacts["screenshot_after-form"])
    assert shot.parent == ctx.artifacts_dir and shot.read_bytes()[:4] == b"\x89PNG"
    assert r.status_code == 200 and r.url == f"{site}/form"
    assert r.bytes > 1000 and r.metrics["requests"] >= 2 and r.metrics["failed_requests"] == 0
    for name in ("dom_content_loaded_ms", "load_ms", "fcp_ms", "lcp_ms"):
        assert r.metrics[name] > 0, name
    assert r.phases["ttfb_ms"] > 0 and r.metrics["cls"] >= 0 and r.metrics["console_errors"] == 0
    assert 0 < r.duration_ms < 15_000


@pytest.mark.parametrize(("action", "error", "message"), [
    ('click: {selector: "#absent", timeout: 300ms}', ErrorClass.BROWSER,
     'action 2 (click "#absent"): Timeout 300ms exceeded'),
    ('expect_text: {selector: "#title", text: "Other", timeout: 300ms}', ErrorClass.ASSERTION,
     "action 2 (expect_text \"#title\"): Locator expected to contain text 'Other' (Actual value: Form page)"),
    ('expect_url: {regex: "/elsewhere$", timeout: 300ms}', ErrorClass.ASSERTION,
     "action 2 (expect_url \"/elsewhere$\"): URL expected to match '/elsewhere$' (Actual value: http://"),
    ('wait_for: {selector: "#title", state: hidden, timeout: 300ms}', ErrorClass.BROWSER,
     'action 2 (wait_for "#title"): Timeout 300ms exceeded'),
    ('extract: {selector: "#absent", name: x, timeout: 300ms}', ErrorClass.BROWSER,
     'action 2 (extract "#absent"): Timeout 300ms exceeded'),
])
async def test_failing_action_is_classified_and_located(browser_probe: BrowserProbe, site: str, tmp_path: Path,
                                                        action: str, error: ErrorClass, message: str) -> None:
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, f'browser:\n  - goto: "{{{{ base }}}}/form"\n  - {action}\n', ctx)
    assert r.outcome is Outcome.FAILED and r.error is error
    assert r.error_message.startswith(message), r.error_message
    assert "Call log" not in r.error_message and len(r.error_message) < 400


async def test_goto_unreachable_is_connect(browser_probe: BrowserProbe, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with run_context(state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, f'browser: [{{goto: "http://127.0.0.1:{port}/"}}]', ctx)
    assert r.outcome is Outcome.FAILED and r.error is ErrorClass.CONNECT, r.error_message
    assert r.error_message.startswith(f'action 1 (goto "http://127.0.0.1:{port}/"): net::ERR_CONNECTION_REFUSED')


async def test_step_timeout_bounds_the_whole_step(browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, 'browser:\n  - goto: "{{ base }}/form"\n  - click: "#absent"\n',
                              ctx, timeout_s=1.0)
    assert r.outcome is Outcome.FAILED and r.duration_ms < 2500
    assert "action 2" in r.error_message


async def test_http_errors_counted_and_fail_when_asked(browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        lenient = await run_browser(browser_probe, 'browser: [{goto: "{{ base }}/broken"}]', ctx)
        strict = await run_browser(browser_probe, 'browser:\n  actions: [{goto: "{{ base }}/broken"}]\n'
                                   '  fail_on_http_errors: true\n', ctx, name="strict")
    assert lenient.outcome is Outcome.PASSED
    assert lenient.metrics["failed_requests"] == 1 and lenient.metrics["console_errors"] >= 1
    assert strict.outcome is Outcome.FAILED and strict.error is ErrorClass.STATUS
    assert strict.error_message == f"1 failed request(s): 404 {site}/missing.png"


async def test_region_header_reaches_the_site(browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    async with run_context(variables={"base": site}, region="ap-south", state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, 'browser:\n  - goto: "{{ base }}/headers"\n'
                              '  - expect_text: {selector: "#region", text: ap-south}\n', ctx)
    assert r.outcome is Outcome.PASSED, r.error_message
