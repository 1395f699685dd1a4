"""The `script` step: an `async def f(ctx)` from the user's file, run as a measured, classified step.

The module is imported once per agent and content (probes/script/loading.py); each step calls the
function with a `ScriptContext` (probes/script/context.py) under the step's timeout, inside the
core's wrapper (`measured`). What the script raises becomes the step's class and a one-line message
naming the script's file:line and sub-step (probes/script/failures.py); `SystemExit` and
`KeyboardInterrupt` are results too, never the agent's end (probes/script/driver.py). Sub-steps
become step points of their own (`StepResult.substeps`); names in `sets` go on to later steps.
When the script used the run's page it is measured and its evidence kept as a browser step's
(probes/script/page.py). A script that holds the event loop is named in a warning.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from probes.script.config import ScriptSpec
from probes.script.context import HTTP_RESOURCE, ScriptContext
from probes.script.driver import ScriptRun
from probes.script.failures import failure_message, where
from probes.script.loading import ScriptModules
from probes.script.page import PageSide
from qos_agent.errors import StepFailure
from qos_agent.language.text import Throttle
from qos_agent.model import ErrorClass, Outcome, Step, StepResult
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.measure import measured

if TYPE_CHECKING:
    import aiohttp
    from playwright.async_api import Page

    from probes.browser.launch import BrowserHost

log = logging.getLogger(__name__)

BLOCK_WARN_MS = 50.0  # agent.max_loop_lag's default: a longer stretch makes the samples in flight `lagged`


class ScriptProbe(Probe):
    def __init__(self) -> None:
        self.modules = ScriptModules()
        self.host: BrowserHost | None = None  # leased on the first page a script asks for
        self.failed_last: set[str] = set()  # journeys whose latest script step failed (`trace: on-retry`)
        self.throttle = Throttle()

    async def close(self) -> None:
        if self.host is not None:
            host, self.host = self.host, None
            await host.release()

    def _host(self) -> BrowserHost:
        if self.host is None:
            from probes.browser.launch import lease_host

            self.host = lease_host()  # the agent's one Chromium, shared with browser steps
        return self.host

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: ScriptSpec = step.spec
        side: list[PageSide] = []
        call: list[ScriptRun] = []

        async def open_page() -> Page:
            if not side:
                failed_before = self.one_shot or ctx.journey.name in self.failed_last
                side.append(PageSide(self._host(), ctx, spec, failed_before))
            return await side[0].page()

        said: list[str] = []

        def stage() -> str:
            """Where the script was when its time ran out (first asked while it still is there)."""
            if not said:
                parts = [f"waiting at {spec.path}:{call[0].waiting_at}"] if call and call[0].waiting_at else []
                if script.current_substep:
                    parts.append(f"in sub-step '{script.current_substep}'")
                said.append(", ".join(parts) or (f"in {spec.path}" if call else f"importing {spec.path}"))
            return said[0]

        script = ScriptContext(step, spec, ctx, open_page, lambda: f"timed out after {step.timeout_s:g}s ({stage()})")

        setup_ms: list[float] = []  # importing the module (its first run): the agent's time

        async def body(result: StepResult) -> None:
            await self._call(spec, script, call, setup_ms)
            result.extracted = _sets(spec, script)

        result = await measured(step, "script", body, stage)
        # As for browser steps, opening the run's page is not the customer's wait; nor is the import.
        result.duration_ms = max(0.0, round(result.duration_ms - sum(setup_ms) - (side[0].open_ms if side else 0), 3))
        if side:
            await side[0].measure(result)
            await side[0].keep_evidence(step.name, result)
        await _hand_over_http(script, ctx)
        result.substeps = script.finish_substeps()
        if call:
            self._held(step, ctx, spec, call[0], result)
        (self.failed_last.add if result.outcome is Outcome.FAILED else self.failed_last.discard)(ctx.journey.name)
        return result

    async def _call(self, spec: ScriptSpec, script: ScriptContext, call: list[ScriptRun], setup_ms: list[float]
                    ) -> None:
        t0 = time.perf_counter_ns()
        loaded = await self.modules.load(spec)
        setup_ms.append((time.perf_counter_ns() - t0) / 1e6)
        if loaded.error:
            at = f" ({spec.path}:{loaded.line})" if loaded.line else ""
            raise StepFailure(ErrorClass.SCRIPT, f"script {spec.path} cannot be imported: {loaded.error}{at}")
        function = self.modules.function(loaded, spec)
        if function is None:
            raise StepFailure(ErrorClass.SCRIPT, f"{spec.path} has no function '{spec.function}'")
        try:
            coro = function(script)
        except BaseException as exc:  # (a plain function that raised: the loader lets none through)
            raise _failure(exc, spec, script) from None
        if not inspect.iscoroutine(coro):
            raise StepFailure(ErrorClass.SCRIPT, f"'{spec.function}' in {spec.path} returned "
                                                 f"{type(coro).__name__}, not a coroutine: write async def")
        run = ScriptRun(coro, spec.file, spec.path)
        call.append(run)
        raised = await run.run()
        if raised is not None:
            raise _failure(raised, spec, script) from None
        failed = next((s for s in script.substeps if s.outcome is Outcome.FAILED), None)
        if failed is not None:  # the script caught it and went on: the step still failed there
            raise StepFailure(failed.error or ErrorClass.SCRIPT, f"sub-step '{failed.step.rpartition('.')[2]}' "
                                                                 f"failed: {failed.error_message}")

    def _held(self, step: Step, ctx: RunContext, spec: ScriptSpec, call: ScriptRun, result: StepResult) -> None:
        """The longest stretch the script ran without yielding: a metric, and a warning past the mark."""
        held = call.driven.held
        result.metrics["blocked_ms"] = round(held.ms, 3)
        if held.ms <= BLOCK_WARN_MS:
            return
        more = self.throttle.allow(f"{ctx.journey.name}\0{step.name}")
        if more is None:
            return
        place = held.place(spec.path)
        log.warning("journey %s, step %s: the script held the event loop for %.0f ms without yielding (%s); "
                    "every step in flight meanwhile was late by as much and is marked lagged (run blocking work "
                    "with `await asyncio.to_thread(...)`)%s", ctx.journey.name, step.name, held.ms, place, more)


def _failure(exc: BaseException, spec: ScriptSpec, script: ScriptContext) -> StepFailure:
    """The step's failure for what the script raised, located; the traceback is let go."""
    substep = script.raised_in[1] if script.raised_in is not None and script.raised_in[0] is exc else ""
    error, message = failure_message(exc, spec.file, spec.path, substep)
    script.raised_in = None
    exc.__traceback__ = None  # (its frames hold the page and the run)
    return StepFailure(error, message)


def _sets(spec: ScriptSpec, script: ScriptContext) -> dict[str, str]:
    """The values the step `sets` for later steps, as strings; one the script did not set fails it."""
    out: dict[str, str] = {}
    for name in spec.sets:
        if name not in script.vars:
            raise StepFailure(ErrorClass.EXTRACT, f"the script set no ctx.vars['{name}'] (the step lists it "
                                                  f"in sets){where(spec.path, 0, '')}")
        value = script.vars[name]
        out[name] = value if isinstance(value, str) else str(value)
    return out


async def _hand_over_http(script: ScriptContext, ctx: RunContext) -> None:
    """A session the script made becomes the run's: later script steps reuse it; the run closes it."""
    session = script.http_session_made()
    if session is None:
        return

    async def made() -> tuple[aiohttp.ClientSession, Callable[[], Awaitable[None]]]:
        return session, session.close

    await ctx.resource(HTTP_RESOURCE, made)

