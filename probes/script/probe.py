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
from probes.script.failures import failure_message
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

    def host_for_pages(self) -> BrowserHost:
        """The agent's one Chromium, leased on the first page a script asks for."""
        if self.host is None:
            from probes.browser.launch import lease_host

            self.host = lease_host()  # the agent's one Chromium, shared with browser steps
        return self.host

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        one = _StepRun(self, step, ctx)
        result = await measured(step, "script", one.body, one.stage)
        # As for browser steps, opening the run's page is not the customer's wait; nor is the import.
        page_ms = one.side.open_ms if one.side is not None else 0.0
        result.duration_ms = max(0.0, round(result.duration_ms - one.import_ms - page_ms, 3))
        if one.side is not None:
            await one.side.measure(result)
            await one.side.keep_evidence(step.name, result)
        await _hand_over_http(one.script, ctx)
        result.substeps = one.script.finish_substeps()
        if one.call is not None:
            self._held(step, ctx, one.spec, one.call, result)
        if result.outcome is Outcome.FAILED:
            self.failed_last.add(ctx.journey.name)
        else:
            self.failed_last.discard(ctx.journey.name)
        return result

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


class _StepRun:
    """One script step in flight: its context, the call, the page it opened, where it stood at a timeout."""

    def __init__(self, probe: ScriptProbe, step: Step, ctx: RunContext) -> None:
        self.probe = probe
        self.step = step
        self.ctx = ctx
        self.spec: ScriptSpec = step.spec
        self.script = ScriptContext(step, self.spec, ctx, self.open_page,
                                    lambda: f"timed out after {step.timeout_s:g}s ({self.stage()})")
        self.side: PageSide | None = None
        self.call: ScriptRun | None = None
        self.import_ms = 0.0  # importing the module (its first run): the agent's time
        self._stage = ""

    async def open_page(self) -> Page:
        if self.side is None:
            failed_before = self.probe.one_shot or self.ctx.journey.name in self.probe.failed_last
            self.side = PageSide(self.probe.host_for_pages(), self.ctx, self.spec, failed_before)
        return await self.side.page()

    def stage(self) -> str:
        """Where the script was when its time ran out (first asked while it still stands there)."""
        if not self._stage:
            spec, call = self.spec, self.call
            parts = [f"waiting at {spec.path}:{call.waiting_at}"] if call is not None and call.waiting_at else []
            if self.script.current_substep:
                parts.append(f"in sub-step '{self.script.current_substep}'")
            self._stage = ", ".join(parts) or (f"in {spec.path}" if call is not None else f"importing {spec.path}")
        return self._stage

    async def body(self, result: StepResult) -> None:
        """Import (once per agent), call, classify; then the values the step `sets`."""
        spec, script = self.spec, self.script
        t0 = time.perf_counter_ns()
        loaded = await self.probe.modules.load(spec)
        self.import_ms = (time.perf_counter_ns() - t0) / 1e6
        if loaded.error:
            at = f" ({spec.path}:{loaded.line})" if loaded.line else ""
            raise StepFailure(ErrorClass.SCRIPT, f"script {spec.path} cannot be imported: {loaded.error}{at}")
        function = self.probe.modules.function(loaded, spec)
        if function is None:
            raise StepFailure(ErrorClass.SCRIPT, f"{spec.path} has no function '{spec.function}'")
        try:
            coro = function(script)
        except BaseException as exc:  # (a plain function that raised: the loader lets none through)
            raise _failure(exc, spec, script) from None
        if not inspect.iscoroutine(coro):
            raise StepFailure(ErrorClass.SCRIPT, f"'{spec.function}' in {spec.path} returned "
                                                 f"{type(coro).__name__}, not a coroutine: write async def")
        self.call = ScriptRun(coro, spec.file, spec.path)
        raised = await self.call.run()
        if raised is not None:
            raise _failure(raised, spec, script) from None
        failed = next((s for s in script.substeps if s.outcome is Outcome.FAILED), None)
        if failed is not None:  # the script caught it and went on: the step still failed there
            raise StepFailure(failed.error or ErrorClass.SCRIPT, f"sub-step '{failed.step.rpartition('.')[2]}' "
                                                                 f"failed: {failed.error_message}")
        result.extracted = _sets(spec, script)


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
                                                  f"in sets; {spec.path})")
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

