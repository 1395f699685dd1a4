"""A browser that crashes or hangs fails that run, classified; the next run gets a fresh browser.
Contexts are always closed: memory stays bounded over many runs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from probes.browser.probe import BrowserProbe
from qos_agent.errors import SetupError
from qos_agent.model import ErrorClass, Outcome
from tests.support import browser as support
from tests.support.browser import browser_step, rss_kb, run_browser
from tests.support.probe_ctx import run_context, run_step

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

browser_probe = support.browser_probe  # the shared fixture, used by name
site = support.site  # the shared fixture, used by name

TINY = 'browser: [{goto: "{{ base }}/tiny"}, {expect_text: {selector: "#t", text: tiny}}]'
# 40 keep the area near its time budget on 2 busy cores; QOS_TEST_BROWSER_RUNS=200 for the full figure.
RSS_RUNS = int(os.environ.get("QOS_TEST_BROWSER_RUNS", "40"))
PARALLEL = 2  # as agent.browser_concurrency defaults to


async def test_missing_chromium_is_one_clear_setup_error(tmp_path: Path) -> None:
    probe = BrowserProbe(executable=str(tmp_path / "chromium"))
    with pytest.raises(SetupError) as err:
        await probe.start()
    assert str(err.value) == (f"chromium not found at {tmp_path / 'chromium'} "
                              "(apt-get install chromium, or point the environment variable QOS_CHROMIUM "
                              "at a Chromium executable)")
    await probe.close()


async def test_killed_browser_fails_the_run_and_the_next_run_relaunches(
        browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        first = await run_browser(browser_probe, TINY, ctx, name="one")
        assert first.outcome is Outcome.PASSED, first.error_message
        [pid] = browser_probe.host.pids()
        launches = browser_probe.host.launches
        os.kill(pid, signal.SIGKILL)
        crashed = await run_browser(browser_probe, TINY, ctx, name="two")
    assert crashed.outcome is Outcome.FAILED and crashed.error is ErrorClass.BROWSER
    assert "closed or crashed" in crashed.error_message
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        again = await run_browser(browser_probe, TINY, ctx)
    assert again.outcome is Outcome.PASSED, again.error_message
    assert browser_probe.host.launches == launches + 1 and browser_probe.host.pids() != [pid]


async def test_hung_browser_is_killed_and_replaced(browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        assert (await run_browser(browser_probe, TINY, ctx)).outcome is Outcome.PASSED
        [pid] = browser_probe.host.pids()
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            hung = await run_browser(browser_probe, TINY, ctx, timeout_s=1.0, name="hung")
            took = time.monotonic() - t0
        finally:
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)
    assert hung.outcome is Outcome.FAILED and hung.error in (ErrorClass.BROWSER, ErrorClass.TIMEOUT)
    assert took < 10, took
    async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
        again = await run_browser(browser_probe, TINY, ctx)
    assert again.outcome is Outcome.PASSED, again.error_message
    assert browser_probe.host.pids() != [pid]


@pytest.mark.slow
async def test_rss_stays_bounded_over_many_runs(browser_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    step = browser_step(TINY)

    async def one() -> None:
        async with run_context(variables={"base": site}, state_dir=tmp_path) as ctx:
            r = await run_step(browser_probe, step, ctx)
            assert r.outcome is Outcome.PASSED, r.error_message

    for _ in range(10):  # warm up: caches, the JIT, the first renderers
        await one()
    await asyncio.sleep(0.5)
    before = rss_kb([os.getpid()])
    t0 = time.monotonic()
    for _ in range(RSS_RUNS // PARALLEL):
        await asyncio.gather(*(one() for _ in range(PARALLEL)))
    took = time.monotonic() - t0
    await asyncio.sleep(0.5)
    after = rss_kb([os.getpid()])
    growth = after - before
    print(f"\nRSS (agent + driver + chromium) over {RSS_RUNS} browser runs, {PARALLEL} at a time: {before / 1024:.0f} MB -> "
          f"{after / 1024:.0f} MB ({growth / 1024:+.1f} MB) in {took:.1f}s")
    assert growth < 60 * 1024, growth
