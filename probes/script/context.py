"""What a script function is given: `async def pay(ctx)`.

`ctx.vars` (the run's variables, a copy: only the names the step `sets` go on to later steps),
`await ctx.page()` (the run's Playwright page, shared with browser steps and the cookie jar),
`ctx.http` (aiohttp on the run's cookie jar, with the agent's headers and the journey's),
`async with ctx.step("name")` (a sub-step: a step point `STEP.name` of its own) and
`ctx.secret("NAME")` (an environment variable, masked from then on). The probe
(probes/script/probe.py) turns what the context recorded into the step's result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from probes.script.config import ScriptSpec
from probes.script.failures import ScriptUsageError, failure_message
from qos_agent.language import safety
from qos_agent.language.text import shown
from qos_agent.model import ErrorClass, Outcome, Step, StepResult
from qos_agent.plugins.context import RunContext

if TYPE_CHECKING:
    import aiohttp
    from playwright.async_api import Page

MAX_SUBSTEPS = 20
HTTP_RESOURCE = "script.http"
REGION_HEADER = "X-QoS-Region"
AGENT_HEADER = "X-QoS-Agent"


class ScriptContext:
    """The script's view of its run. Everything it records is masked by the core like any step."""

    def __init__(self, step: Step, spec: ScriptSpec, run: RunContext, open_page: Callable[[], Awaitable[Page]],
                 timed_out: Callable[[], str]) -> None:
        self.vars: dict[str, str] = dict(run.variables)
        self._step = step
        self._spec = spec
        self._run = run
        self._open_page = open_page
        self._timed_out = timed_out  # the message of a sub-step the step's timeout cut short
        self._http: aiohttp.ClientSession | None = None
        self.http_made = False  # this step made the run's script session: the probe hands it to the run
        self.substeps: list[StepResult] = []
        self._active: list[tuple[str, StepResult]] = []
        self.raised_in: tuple[BaseException, str] | None = None  # an exception and the innermost sub-step it left

    @property
    def journey(self) -> str:
        return self._run.journey.name

    @property
    def region(self) -> str:
        return self._run.region

    @property
    def attempt(self) -> int:
        return self._run.attempt

    @property
    def current_substep(self) -> str:
        return self._active[-1][0] if self._active else ""

    async def page(self) -> Page:
        """The run's page: the browser context its browser steps use, with the run's cookies."""
        return await self._open_page()

    @property
    def http(self) -> aiohttp.ClientSession:
        """An aiohttp session on the run's cookie jar (cookies flow to and from HTTP and browser steps),
        sending X-QoS-Region, X-QoS-Agent and the journey's `headers:`; the run closes it."""
        if self._http is None:
            existing = self._run.peek(HTTP_RESOURCE)
            if existing is not None:
                self._http = existing
            else:
                import aiohttp

                headers = {name: self._run.render(value) for name, value in self._run.journey.headers}
                headers[REGION_HEADER], headers[AGENT_HEADER] = self._run.region, self._run.agent
                self._http = aiohttp.ClientSession(cookie_jar=self._run.cookie_jar, headers=headers,
                                                   trust_env=True)
                self.http_made = True
        return self._http

    def secret(self, name: str) -> str:
        """The environment variable `name`, masked from now on wherever the agent writes."""
        value = os.environ.get(name)
        if value is None:
            raise ScriptUsageError(f"ctx.secret: the environment variable {name} is not set")
        self._run.redact.add(value)
        return value

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        """A sub-step: timed, with its own outcome, recorded as the step point `STEP.name`."""
        full = self._substep_name(name)
        result = StepResult(step=full, probe="script", outcome=Outcome.PASSED, start_ms=time.time_ns() // 1_000_000)
        self.substeps.append(result)
        self._active.append((name, result))
        t0 = time.perf_counter_ns()
        try:
            yield
        except asyncio.CancelledError:
            result.outcome, result.error, result.error_message = Outcome.FAILED, ErrorClass.TIMEOUT, self._timed_out()
            raise
        except BaseException as exc:
            result.outcome = Outcome.FAILED
            result.error, result.error_message = failure_message(exc, self._spec.file, self._spec.path, "")
            if self.raised_in is None or self.raised_in[0] is not exc:
                self.raised_in = (exc, name)
            raise
        finally:
            result.duration_ms = round((time.perf_counter_ns() - t0) / 1e6, 3)
            self._active.pop()

    def http_session_made(self) -> aiohttp.ClientSession | None:
        """The session this step made (the probe hands it to the run), else None."""
        return self._http if self.http_made else None

    def finish_substeps(self) -> tuple[StepResult, ...]:
        """The sub-steps as the step ends: one still open (a script that ignored its cancellation) timed
        out; copies, so a script left running in the background cannot change what is reported."""
        for _, result in self._active:
            if result.outcome is Outcome.PASSED:
                result.outcome, result.error, result.error_message = (Outcome.FAILED, ErrorClass.TIMEOUT,
                                                                      self._timed_out())
        return tuple(dataclasses.replace(s) for s in self.substeps)

    def _substep_name(self, name: str) -> str:
        if not isinstance(name, str) or not safety.name_ok(name):
            raise ScriptUsageError(f"ctx.step({shown(name)}): a sub-step name is {safety.NAME_RULE}")
        full = f"{self._step.name}.{name}"
        if not safety.name_ok(full):
            raise ScriptUsageError(f"ctx.step({shown(name)}): '{full}' is longer than a step name may be (100)")
        if len(self.substeps) >= MAX_SUBSTEPS:
            raise ScriptUsageError(f"ctx.step({shown(name)}): at most {MAX_SUBSTEPS} sub-steps per step "
                                   "(time a loop as one sub-step)")
        return full
