"""The `browser` step: actions in real headless Chromium, measured as the customer sees the page.

One browser per agent (`BrowserHost`: Debian's chromium, env `QOS_CHROMIUM` to point elsewhere),
one context and page per journey run (`BrowserSession`), shared by the run's browser steps and
exchanging cookies with the run's HTTP steps. A failed step leaves a screenshot and a trace under
`state_dir/artifacts/<journey>/<run_id>/`. `run` never raises (cancellation aside): a crash, a hang
or a broken page becomes a classified result, and the next run gets a fresh browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from probes.browser.artifacts import free_path, prune
from probes.browser.config import BrowserSpec
from probes.browser.net import context_options
from probes.common.netspec import render_net
from qos_agent.errors import SetupError
from qos_agent.model import ErrorClass, Outcome, Step, StepResult, Yielded
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe

if TYPE_CHECKING:
    from probes.browser.actions import ActionRunner
    from probes.browser.session import BrowserSession
    from probes.browser.vitals import StepCounters

# Playwright (~110 ms of imports) loads only when a browser probe is made: validating a file, or
# running only HTTP journeys, never pays for it (docs/benchmarks.md, `check` start-up).

RESOURCE = "browser"
GRACE_S = 3.0  # past the step's timeout, Playwright has not answered: the browser hangs
ARTIFACT_TIMEOUT_S = 10.0


class BrowserProbe(Probe):
    def __init__(self, executable: str | None = None) -> None:
        from probes.browser.launch import lease_host

        self.host = lease_host(executable)  # shared with the script kind's pages: one Chromium per agent
        self.released = False
        self.failed_last: set[str] = set()  # journeys whose latest browser step failed (`trace: on-retry`)

    async def start(self) -> None:
        """Before the first run: the browser must exist and launch (SetupError names the fix)."""
        self.host.check()
        try:
            await self.host.browser()
        except SetupError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SetupError(f"chromium at {self.host.executable} did not start: {first}") from None

    async def close(self) -> None:
        if not self.released:
            self.released = True
            await self.host.release()

    def _maker(self, ctx: RunContext, spec: BrowserSpec
               ) -> Callable[[], Awaitable[tuple[BrowserSession, Callable[[], Awaitable[None]]]]]:
        async def make() -> tuple[BrowserSession, Callable[[], Awaitable[None]]]:
            from probes.browser.session import BrowserSession, origin_of

            urls = [ctx.render(a.value) for a in spec.actions if a.verb == "goto"]
            options = context_options(render_net(spec.net, ctx.render), urls, spec.verify_tls)
            failed_before = self.one_shot or ctx.journey.name in self.failed_last
            # Every browser step of the journey shares this context: trace the origins all their gotos name.
            gotos = [ctx.render(a.value) for s in ctx.journey.steps if isinstance(s.spec, BrowserSpec)
                     for a in s.spec.actions if a.verb == "goto"]
            origins = frozenset(filter(None, map(origin_of, gotos or urls)))
            session = await BrowserSession.open(self.host, ctx, options, spec.trace, failed_before, origins)
            return session, session.close

        return make

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        from probes.browser.actions import ActionFailed, ActionRunner
        from probes.browser.vitals import StepCounters

        spec: BrowserSpec = step.spec
        result = StepResult(step=step.name, probe="browser", outcome=Outcome.PASSED,
                            start_ms=time.time_ns() // 1_000_000)
        try:
            session = await ctx.resource(RESOURCE, self._maker(ctx, spec))
        except SetupError as e:
            return _fail(result, ErrorClass.BROWSER, str(e))
        except Exception as e:  # a launch that failed or a browser that does not answer
            await self.host.discard()
            return _fail(result, ErrorClass.BROWSER, f"could not open a browser page: {_first_line(e)}")
        if not session.alive:
            return _fail(result, ErrorClass.BROWSER, "the browser closed or crashed earlier in this run")
        runner = ActionRunner(session.page, ctx, session.guard.secret_selectors, spec.mask)
        counters = StepCounters()
        try:
            async with asyncio.timeout(step.timeout_s + GRACE_S):
                await session.bridge.to_browser()
                session.watch.reset()
                await self._actions(step, spec, session, runner, ctx, result)
        except TimeoutError:
            session.broken = True
            result.outcome, result.error = Outcome.FAILED, ErrorClass.BROWSER
            result.error_message = f"the browser did not answer within {step.timeout_s + GRACE_S:g}s; restarting it"
            await self.host.discard(session.browser)
        except ActionFailed as f:
            result.outcome, result.error, result.error_message = Outcome.FAILED, f.error, f.message
        except Exception as e:  # cookie sync on a dying browser, and the like
            result.outcome, result.error = Outcome.FAILED, ErrorClass.BROWSER
            result.error_message = _first_line(e)
        if not session.alive:
            session.broken = True
            if result.outcome is Outcome.FAILED and "closed or crashed" not in result.error_message:
                result.error_message += " (the browser closed or crashed)"
        else:
            counters = await self._measure(session, result)
            if session.broken and result.outcome is Outcome.FAILED:
                result.error_message += " (the browser stopped answering; restarting it)"
        if step.extract and result.outcome is not Outcome.FAILED and session.alive:
            await self._yield_page(session, counters, result)
        self._finish(spec, result, runner, counters)
        if result.outcome is Outcome.FAILED:
            self.failed_last.add(ctx.journey.name)
        else:
            self.failed_last.discard(ctx.journey.name)
        if session.alive and (result.outcome is Outcome.FAILED or session.keep_trace):
            await self._failure_artifacts(step, session, runner, result.outcome is Outcome.FAILED)
        result.artifacts = runner.artifacts
        result.extracted = runner.extracted  # (`extract` actions; the core adds the step's `extract:`)
        if result.artifacts:
            await asyncio.to_thread(prune, ctx.state_dir / "artifacts", ctx.artifacts_dir)
        return result

    async def _actions(self, step: Step, spec: BrowserSpec, session: BrowserSession, runner: ActionRunner,
                       ctx: RunContext, result: StepResult) -> None:
        from probes.browser.actions import ActionFailed, holds_secret, typed_value

        t0 = time.perf_counter_ns()
        deadline = time.monotonic() + step.timeout_s
        try:
            for action in spec.actions:
                typed = typed_value(action, ctx)
                secret = holds_secret(typed, ctx)
                await session.guard.before(ctx.render(action.selector) if secret else None)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ActionFailed(ErrorClass.TIMEOUT, f"action {action.index} ({action.label}): "
                                       f"step timeout of {step.timeout_s:g}s reached")
                limit = min(action.timeout_s, remaining) if action.timeout_s else remaining
                await runner.run(action, limit * 1000)
        finally:
            result.duration_ms = round((time.perf_counter_ns() - t0) / 1e6, 3)

    @staticmethod
    async def _yield_page(session: BrowserSession, counters: StepCounters, result: StepResult) -> None:
        """What the step's `extract:` reads (the core extracts): regex the HTML of the page it ended
        on, json its text (a JSON document), header its last document response, cookie the run's jar."""
        try:
            async with asyncio.timeout(ARTIFACT_TIMEOUT_S):
                html = await session.page.content()
                text = await session.page.evaluate("() => document.body ? document.body.innerText : ''")
            result.yielded = Yielded(body=html, json_body=str(text), headers=dict(counters.document_headers),
                                     url=session.page.url)
        except Exception as e:  # the page went away while reading it
            result.outcome, result.error = Outcome.FAILED, ErrorClass.BROWSER
            result.error_message = f"extract: could not read the page: {_first_line(e)}"

    async def _measure(self, session: BrowserSession, result: StepResult) -> StepCounters:
        """Cookies back into the jar (also after a failure; a liveness check too), then timings and counts."""
        from probes.browser.session import cookies_to_jar
        from probes.browser.vitals import collect

        counters = session.watch.reset()
        if not await cookies_to_jar(session, self.host, merge=False):
            return counters
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ARTIFACT_TIMEOUT_S):
                await collect(session.page, counters, result.phases, result.metrics)
                result.url = session.page.url
        return counters

    @staticmethod
    def _finish(spec: BrowserSpec, result: StepResult, runner: ActionRunner, counters: StepCounters) -> None:
        result.bytes = counters.bytes
        result.status_code = counters.document_status or runner.nav_status
        if result.outcome is Outcome.PASSED and spec.fail_on_http_errors and counters.failed:
            more = f" (+{len(counters.failed) - 1} more)" if len(counters.failed) > 1 else ""
            result.outcome, result.error = Outcome.FAILED, ErrorClass.STATUS
            result.error_message = f"{len(counters.failed)} failed request(s): {counters.failed[0]}{more}"
        elif result.outcome is Outcome.FAILED and counters.notes:
            result.error_message += f"; page error: {counters.notes[0]}"

    @staticmethod
    async def _failure_artifacts(step: Step, session: BrowserSession, runner: ActionRunner, failed: bool) -> None:
        """Screenshot (secret inputs masked, failures only) and the trace so far, when tracing was on."""
        directory = runner.ctx.artifacts_dir
        if failed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(ARTIFACT_TIMEOUT_S):
                    await runner.screenshot(step.name, 5000)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ARTIFACT_TIMEOUT_S):
                directory.mkdir(parents=True, exist_ok=True)
                path = free_path(directory, "trace", ".zip")
                # Cookie values (the page's own too) are masked always, like Authorization headers.
                runner.ctx.redact.add(*(m.value for m in runner.ctx.cookie_jar))
                if await session.guard.save(path, runner.ctx.redact.secrets):
                    runner.artifacts["trace"] = str(path)


def _fail(result: StepResult, error: ErrorClass, message: str) -> StepResult:
    result.outcome, result.error, result.error_message = Outcome.FAILED, error, message
    return result


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
