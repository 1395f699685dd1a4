"""The demo's mixed checkout in real Chromium: an API sign-in whose cookie the browser uses, and the
broken-bundle fault caught by the browser while a plain HTTP check of the same page stays green."""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from probes.browser.probe import BrowserProbe
from probes.http.probe import HttpProbe
from qos_agent.demo import FaultBook, start_demo
from qos_agent.model import ErrorClass, Outcome, StepResult
from tests.support import browser as support
from tests.support.browser import browser_step
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

browser_probe = support.browser_probe  # the shared fixture, used by name

LOGIN = ('name: login\nhttp: {method: POST, url: "{{ base }}/api/login", json: {user: demo, password: "{{ pw }}"}}\n'
         "expect: {status: 200}")
PAGE = 'name: page\nhttp: {url: "{{ base }}/checkout"}\nexpect: {status: 200, body_contains: "Pay"}'
PAY = """browser:
  - goto: "{{ base }}/dashboard"
  - expect_text: {selector: "#welcome", text: "Welcome, demo"}
  - goto: "{{ base }}/checkout"
  - fill: {selector: "#card", value: "4242 4242 4242 4242"}
  - click: {selector: "#pay", timeout: 1500ms}
  - expect_text: {selector: ".status", text: Paid}
  - extract: {selector: "#order", name: order_id}
"""


@dataclass
class Demo:
    url: str
    faults: FaultBook


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def demo() -> AsyncIterator[Demo]:
    book = FaultBook(seed=7)
    runner, url = await start_demo("127.0.0.1", 0, book)
    try:
        yield Demo(url, book)
    finally:
        await runner.cleanup()


async def checkout(probe: BrowserProbe, demo: Demo, state_dir: Path) -> tuple[StepResult, StepResult, StepResult]:
    http = HttpProbe()
    login, page = (make_step(parse_step("http", text)[0], name=n) for text, n in ((LOGIN, "login"), (PAGE, "page")))
    try:
        async with run_context(variables={"base": demo.url, "pw": "demo"}, state_dir=state_dir) as ctx:
            signed_in = await run_step(http, login, ctx)
            assert signed_in.outcome is Outcome.PASSED, signed_in.error_message
            paid = await run_step(probe, browser_step(PAY, name="pay", timeout_s=8), ctx)
            plain = await run_step(http, page, ctx)
    finally:
        await http.close()
    return signed_in, paid, plain


async def test_mixed_checkout_passes(browser_probe: BrowserProbe, demo: Demo, tmp_path: Path) -> None:
    _, paid, plain = await checkout(browser_probe, demo, tmp_path)
    assert paid.outcome is Outcome.PASSED, paid.error_message
    assert paid.extracted["order_id"].startswith("o-") and not paid.artifacts
    assert paid.metrics["failed_requests"] == 0 and paid.metrics["console_errors"] == 0
    assert plain.outcome is Outcome.PASSED


async def test_broken_bundle_caught_while_the_page_answers_200(browser_probe: BrowserProbe, demo: Demo,
                                                               tmp_path: Path) -> None:
    rule = demo.faults.add_spec("path=/static/app.js,break_bundle=true")
    try:
        _, paid, plain = await checkout(browser_probe, demo, tmp_path)
    finally:
        demo.faults.remove(rule)
    assert plain.outcome is Outcome.PASSED and plain.status_code == 200
    assert paid.outcome is Outcome.FAILED and paid.error is ErrorClass.BROWSER
    assert paid.error_message.startswith('action 5 (click "#pay"): Timeout 1500ms exceeded'), paid.error_message
    assert "page error: Error: demo fault: broken bundle" in paid.error_message
    assert paid.status_code == 200 and paid.metrics["console_errors"] >= 1
    assert Path(paid.artifacts["screenshot"]).exists()
    with zipfile.ZipFile(paid.artifacts["trace"]) as z:
        assert "trace.trace" in z.namelist()
