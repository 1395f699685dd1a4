"""A script step's side of the run's browser page: opened or shared, cookies bridged, measured, kept.

The page is the run's one `BrowserSession` (probes/browser/session.py), the same resource the
run's browser steps use, so a script and a browser step see one page, one context and one set of
cookies; it is opened on the first `await ctx.page()` of a run, from the agent's one Chromium
(`lease_host`). Before the script first touches the page the jar's cookies go to the browser;
after the step both sides' changes meet in the jar (`merge_to_jar`: the script's own HTTP calls
may have set cookies while its page did). Then the page is measured as a browser step is
(timings, vitals, requests), and a failed step keeps a screenshot and the trace, as browser steps do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from probes.browser.artifacts import free_path, prune
from probes.browser.net import context_options
from probes.browser.probe import ARTIFACT_TIMEOUT_S, RESOURCE
from probes.common.netspec import NetSpec
from probes.script.config import ScriptSpec
from qos_agent.errors import SetupError, StepFailure
from qos_agent.model import ErrorClass, Outcome, StepResult
from qos_agent.plugins.context import RunContext

if TYPE_CHECKING:
    from playwright.async_api import Page

    from probes.browser.launch import BrowserHost
    from probes.browser.session import BrowserSession

SCREENSHOT_MS = 5000


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


class PageSide:
    """The run's page as one script step uses it (made per step; the session itself is the run's)."""

    def __init__(self, host: BrowserHost, run: RunContext, spec: ScriptSpec, failed_before: bool) -> None:
        self.host = host
        self.run = run
        self.spec = spec
        self.failed_before = failed_before
        self.session: BrowserSession | None = None  # set once the script asked for the page
        self.open_ms = 0.0  # opening the run's context and page here: the agent's time, not the customer's

    async def page(self) -> Page:
        if self.session is None:
            session = self.run.peek(RESOURCE)
            if session is None:
                t0 = time.perf_counter_ns()
                session = await self._open()
                self.open_ms = (time.perf_counter_ns() - t0) / 1e6
            if not session.alive:
                raise StepFailure(ErrorClass.BROWSER, "the browser closed or crashed earlier in this run")
            await session.bridge.to_browser()
            session.watch.reset()
            self.session = session
        return self.session.page

    async def _open(self) -> BrowserSession:
        from probes.browser.session import BrowserSession

        async def make() -> tuple[BrowserSession, Callable[[], Awaitable[None]]]:
            session = await BrowserSession.open(self.host, self.run, context_options(NetSpec(), []),
                                                self.spec.trace, self.failed_before)
            return session, session.close

        try:
            session: BrowserSession = await self.run.resource(RESOURCE, make)
        except SetupError as e:
            raise StepFailure(ErrorClass.BROWSER, str(e)) from None
        except Exception as e:  # a launch that failed or a browser that does not answer
            await self.host.discard()
            raise StepFailure(ErrorClass.BROWSER, f"could not open a browser page: {_first_line(e)}") from None
        return session

    async def measure(self, result: StepResult) -> None:
        """After the script: cookies back into the jar (a liveness check too), then what the page did."""
        from probes.browser.session import cookies_to_jar
        from probes.browser.vitals import collect

        session = self.session
        if session is None:
            return
        if not session.alive:
            session.broken = True
            if result.outcome is Outcome.FAILED:
                result.error_message += " (the browser closed or crashed)"
            return
        counters = session.watch.reset()
        if not await cookies_to_jar(session, self.host, merge=True):
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ARTIFACT_TIMEOUT_S):
                await collect(session.page, counters, result.phases, result.metrics)
                result.url = session.page.url
        result.bytes = counters.bytes
        result.status_code = counters.document_status

    async def keep_evidence(self, step_name: str, result: StepResult) -> None:
        """A failed step: a screenshot (secret inputs and `mask:` painted over) and the trace so far;
        `trace: always`: the trace of every step. Only when the script used the page."""
        from probes.browser.actions import ActionRunner

        session, failed = self.session, result.outcome is Outcome.FAILED
        if session is None or not session.alive or not (failed or session.keep_trace):
            return
        runner = ActionRunner(session.page, self.run, session.guard.secret_selectors, self.spec.mask)
        if failed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(ARTIFACT_TIMEOUT_S):
                    await runner.screenshot(step_name, SCREENSHOT_MS)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ARTIFACT_TIMEOUT_S):
                directory = self.run.artifacts_dir
                directory.mkdir(parents=True, exist_ok=True)
                path = free_path(directory, "trace", ".zip")
                self.run.redact.add(*(m.value for m in self.run.cookie_jar))  # cookie values: masked always
                if await session.guard.save(path, self.run.redact.secrets):
                    runner.artifacts["trace"] = str(path)
        result.artifacts = runner.artifacts
        if result.artifacts:
            await asyncio.to_thread(prune, self.run.state_dir / "artifacts", self.run.artifacts_dir)
