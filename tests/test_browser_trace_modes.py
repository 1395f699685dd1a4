"""`trace:` modes of browser steps in the long-running agent (no one_shot): on-retry records nothing while
a journey passes, and traces the retry or the next run of a failed one; always keeps every run's trace;
off never records. Real headless Chromium against the local test site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from probes.browser.probe import BrowserProbe
from qos_agent.model import Outcome
from tests.support import browser as support
from tests.support.browser import run_browser, trace_actions
from tests.support.probe_ctx import run_context

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
site = support.site

FAILING = '  - goto: "{{ base }}/form"\n  - click: {selector: "#absent", timeout: 300ms}\n'
PASSING = '  - goto: "{{ base }}/form"\n  - click: "#go"\n'


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def agent_probe() -> AsyncIterator[BrowserProbe]:
    """A probe as the agent has it (not one_shot): its own Chromium, for this module."""
    probe = BrowserProbe()
    await probe.start()
    try:
        yield probe
    finally:
        await probe.close()


async def run(probe: BrowserProbe, mode: str, actions: str, site: str, tmp: Path, attempt: int = 1,
              run_id: str = "r1") -> tuple[Outcome, dict[str, str]]:
    text = f"browser:\n  trace: {mode}\n  actions:\n" + "".join("  " + line + "\n" for line in actions.splitlines())
    async with run_context(variables={"base": site}, state_dir=tmp, run_id=run_id, attempt=attempt) as ctx:
        r = await run_browser(probe, text, ctx, name="pay")
    return r.outcome, r.artifacts


async def test_on_retry_traces_the_retry_and_the_next_run_after_a_failure(agent_probe: BrowserProbe, site: str,
                                                                          tmp_path: Path) -> None:
    outcome, artifacts = await run(agent_probe, "on-retry", PASSING, site, tmp_path, run_id="r1")
    assert outcome is Outcome.PASSED and artifacts == {}
    outcome, artifacts = await run(agent_probe, "on-retry", FAILING, site, tmp_path, run_id="r2")
    assert outcome is Outcome.FAILED and "screenshot" in artifacts and "trace" not in artifacts  # untraced
    outcome, artifacts = await run(agent_probe, "on-retry", FAILING, site, tmp_path, run_id="r3", attempt=2)
    assert outcome is Outcome.FAILED and "trace" in artifacts  # the retry (or next run) is traced
    assert "click" in [e.get("method") for e in trace_actions(artifacts["trace"])]
    outcome, artifacts = await run(agent_probe, "on-retry", PASSING, site, tmp_path, run_id="r4")
    assert outcome is Outcome.PASSED and artifacts == {}  # traced (after a failure), passed: discarded
    outcome, artifacts = await run(agent_probe, "on-retry", FAILING, site, tmp_path, run_id="r5")
    assert "trace" not in artifacts  # passing again: first attempts are untraced again


async def test_always_keeps_and_off_never_records(agent_probe: BrowserProbe, site: str, tmp_path: Path) -> None:
    outcome, artifacts = await run(agent_probe, "always", PASSING, site, tmp_path, run_id="a1")
    assert outcome is Outcome.PASSED and Path(artifacts["trace"]).exists() and "screenshot" not in artifacts
    outcome, artifacts = await run(agent_probe, "on-failure", FAILING, site, tmp_path, run_id="a2")
    assert outcome is Outcome.FAILED and "trace" in artifacts
    outcome, artifacts = await run(agent_probe, "off", FAILING, site, tmp_path, run_id="a3", attempt=2)
    assert outcome is Outcome.FAILED and "screenshot" in artifacts and "trace" not in artifacts
