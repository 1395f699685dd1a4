"""One conversation (cookies both ways with HTTP steps), failure artifacts, and secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest
from yarl import URL

from probes.browser.probe import BrowserProbe
from probes.http.probe import HttpProbe
from qos_agent.model import ErrorClass, Outcome
from tests.support import browser as support
from tests.support.browser import run_browser, trace_actions, zip_bytes
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

browser_probe = support.browser_probe  # the shared fixture, used by name
site = support.site  # the shared fixture, used by name

SECRET = "Sup3r-S3cret value&more"


async def test_cookies_flow_both_ways_with_http_steps(browser_probe: BrowserProbe, site: str,
                                                      tmp_path: Path) -> None:
    http = HttpProbe()
    set_spec, p1 = parse_step("http", 'name: s\nhttp: {url: "{{ base }}/set-cookie"}')
    echo_spec, p2 = parse_step("http", 'name: e\nhttp: {url: "{{ base }}/echo-cookies"}\n'
                               'expect: {json: {"$.from_browser": {equals: b1}}}')
    assert not p1 and not p2
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        first = await run_step(http, make_step(set_spec), ctx)
        assert first.outcome is Outcome.PASSED, first.error_message
        seen = await run_browser(browser_probe, 'browser:\n  - goto: "{{ base }}/cookies"\n'
                                 '  - expect_text: {selector: "#seen", text: "from_http=h1"}\n', ctx)
        assert seen.outcome is Outcome.PASSED, seen.error_message
        jar = {c.key: c.value for c in ctx.cookie_jar.filter_cookies(URL(site)).values()}
        assert jar == {"from_http": "h1", "from_browser": "b1"}
        echoed = await run_step(http, make_step(echo_spec), ctx)
        assert echoed.outcome is Outcome.PASSED, echoed.error_message
        # A cookie the HTTP side drops is gone for the browser too.
        ctx.cookie_jar.clear(lambda m: m.key == "from_http")
        again = await run_browser(browser_probe, 'browser:\n  - goto: "{{ base }}/cookies"\n'
                                  '  - expect_text: {selector: "#seen", regex: "^from_browser=b1$"}\n', ctx)
        assert again.outcome is Outcome.PASSED, again.error_message
        # A jar emptied between browser steps empties the browser too (the bridge skips the round
        # trip only while both are known to be empty, as in a run's fresh context).
        ctx.cookie_jar.clear()
        emptied = await run_browser(browser_probe, 'browser:\n  - goto: "{{ base }}/cookies"\n'
                                    '  - expect_text: {selector: "#seen", regex: "^$"}\n', ctx)
        assert emptied.outcome is Outcome.PASSED, emptied.error_message
    await http.close()


async def test_failed_step_leaves_screenshot_and_trace(browser_probe: BrowserProbe, site: str,
                                                       tmp_path: Path) -> None:
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, 'browser:\n  - goto: "{{ base }}/form"\n'
                              '  - click: {selector: "#absent", timeout: 300ms}\n', ctx, name="pay")
    assert r.outcome is Outcome.FAILED and r.error is ErrorClass.BROWSER
    shot, trace = Path(r.artifacts["screenshot"]), Path(r.artifacts["trace"])
    assert shot == ctx.artifacts_dir / "pay.png" and shot.read_bytes()[:4] == b"\x89PNG"
    assert trace == ctx.artifacts_dir / "trace.zip"
    assert ctx.artifacts_dir == tmp_path / "artifacts" / "j" / "run-1"
    zip_bytes(trace)  # opens, and every member reads back
    methods = [e.get("method") for e in trace_actions(trace)]
    assert "goto" in methods and "click" in methods


async def test_secret_typed_by_fill_never_reaches_the_trace(browser_probe: BrowserProbe, site: str,
                                                            tmp_path: Path) -> None:
    steps = """browser:
  - goto: "{{ base }}/form"
  - fill: {selector: "#user", value: ann}
  - fill: {selector: "#password", value: "{{ pw }}"}
  - fill: {selector: "#secret", value: "{{ pw }}"}
  - click: "#send"
  - expect_text: {selector: "#thanks", text: "thanks ann"}
  - click: {selector: "#absent", timeout: 300ms}
"""
    async with run_context(variables={"base": site, "pw": SECRET}, secrets=[SECRET], state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, steps, ctx, name="login")
    assert r.outcome is Outcome.FAILED and "action 7" in r.error_message
    data = zip_bytes(r.artifacts["trace"])
    for form in (SECRET, "Sup3r-S3cret+value%26more", "Sup3r-S3cret%20value%26more", "Sup3r-S3cret value&amp;more"):
        assert form.encode() not in data, form
    methods = [e.get("method") for e in trace_actions(r.artifacts["trace"])]
    assert "click" in methods  # the trace resumed on the page after the form was sent
    assert SECRET not in Path(r.artifacts["screenshot"]).name


async def test_secret_in_a_failing_form_step_gives_masked_screenshot_and_no_trace(
        browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    steps = ('browser:\n  - goto: "{{ base }}/form"\n  - fill: {selector: "#secret", value: "{{ pw }}"}\n'
             '  - click: {selector: "#absent", timeout: 300ms}\n')
    async with run_context(variables={"base": site, "pw": SECRET}, secrets=[SECRET], state_dir=tmp_path) as ctx:
        r = await run_browser(browser_probe, steps, ctx)
    assert r.outcome is Outcome.FAILED
    assert "trace" not in r.artifacts and Path(r.artifacts["screenshot"]).exists()

