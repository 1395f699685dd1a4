"""Executes journey runs: each run is one conversation, steps in order, results for every step.

Steps share one cookie jar, one variable scope and the run's resources (HTTP session, browser
context). After a failed step the rest are recorded as skipped unless `always_run: true`. The whole
run sits under the journey's timeout. Retries are separate attempts, each recorded; only the last
counts (`final`), and one that passes on a retry is flaky, never hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import aiohttp

from qos_agent.language.secrets import Redactor
from qos_agent.model import Config, ErrorClass, Journey, JourneyResult, Outcome, Step, StepResult
from qos_agent.plugins import registry
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.runloop.looplag import LoopLag
from qos_agent.steps.core import finish, prepare

RETRY_PAUSE_S = 0.25


def longest_run_s(journey: Journey) -> float:
    """The longest one scheduled run may legitimately take: every attempt (retries + 1) up to the
    journey's timeout, plus its `always_run` steps (a cleanup runs on after the timeout, bounded by
    its own), plus the pauses between attempts. /healthz must not call a run this long stuck."""
    attempt_s = journey.timeout_s + sum(s.timeout_s for s in journey.steps if s.always_run)
    return (journey.retries + 1) * attempt_s + journey.retries * RETRY_PAUSE_S


def journey_outcome(steps: Sequence[StepResult], duration_ms: float,
                    latency_slo_s: float | None = None) -> tuple[Outcome, StepResult | None]:
    """The outcome rules (tests and benches call these too): a failed step fails the run (the first
    one is named); else a run slower than its latency objective, or with a degraded step, is degraded."""
    failed = next((s for s in steps if s.outcome is Outcome.FAILED), None)
    if failed is not None:
        return Outcome.FAILED, failed
    slow = latency_slo_s is not None and duration_ms > latency_slo_s * 1000
    if slow or any(s.outcome is Outcome.DEGRADED for s in steps):
        return Outcome.DEGRADED, None
    return Outcome.PASSED, None


class ProbeSet:
    """One probe instance per step kind for the agent's life (a browser probe holds a browser).

    `one_shot` (the `check` command): each journey runs once, so a probe that saves evidence of a
    failure only on a later run (the browser's `trace: on-retry`) records it on the first run instead.
    """

    def __init__(self, one_shot: bool = False) -> None:
        self._probes: dict[str, Probe] = {}
        self.one_shot = one_shot

    def get(self, kind: str) -> Probe:
        if kind not in self._probes:
            probe = registry.make_probe(kind)
            probe.one_shot = self.one_shot
            self._probes[kind] = probe
        return self._probes[kind]

    async def start(self, journeys: Iterable[Journey]) -> None:
        """Let each probe in use check its setup (a browser present) before the first run."""
        for kind in sorted({s.kind for j in journeys for s in j.steps}):
            await self.get(kind).start()

    async def close(self) -> None:
        for probe in self._probes.values():
            with contextlib.suppress(Exception):
                await probe.close()
        self._probes.clear()


class _UniqueMs:
    """Millisecond timestamps that never repeat per key: two runs never share series and time."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, ...], int] = {}

    def __call__(self, key: tuple[str, ...], ms: int) -> int:
        last = self._last.get(key)
        if last is not None and ms <= last:
            ms = last + 1
        self._last[key] = ms
        return ms


class Runner:
    def __init__(self, config: Config, redact: Redactor | None = None, probes: ProbeSet | None = None) -> None:
        self.config = config
        self.redact = redact or Redactor(config.secrets)
        self.probes = probes or ProbeSet()
        self.state_dir = Path(config.agent.state_dir)
        self._unique_ms = _UniqueMs()
        self.browser_slots = asyncio.Semaphore(config.agent.browser_concurrency)
        # Started with the first run, so `check`, benches and the agent all mark lagged samples.
        self.looplag = LoopLag(config.agent.max_loop_lag_s * 1000)

    async def run(self, journey: Journey) -> list[JourneyResult]:
        """Every attempt of one scheduled run; the last one is final."""
        results: list[JourneyResult] = []
        heavy = any(s.heavy for s in journey.steps)  # takes a slot of agent.browser_concurrency
        first: tuple[str, str] = ("", "")  # a retry is a trace of its own, linked to the first attempt's run
        for attempt in range(1, journey.retries + 2):
            if heavy:
                async with self.browser_slots:
                    result = await self.run_once(journey, attempt, first)
            else:
                result = await self.run_once(journey, attempt, first)
            first = first if first[0] else (result.trace_id, result.span_id)
            results.append(result)
            if result.outcome.ok:
                break
            if attempt <= journey.retries:
                await asyncio.sleep(RETRY_PAUSE_S)
        for r in results[:-1]:
            r.final = False
        return results

    async def run_once(self, journey: Journey, attempt: int = 1, first: tuple[str, str] = ("", "")) -> JourneyResult:
        agent = self.config.agent
        self.looplag.threshold_ms = agent.max_loop_lag_s * 1000
        self.looplag.start()
        mark = self.looplag.mark()
        start_ns = time.perf_counter_ns()
        start_ms = self._unique_ms((journey.name,), time.time_ns() // 1_000_000)
        run_id = os.urandom(8).hex()  # 16 hex digits, as uuid4().hex[:16] gave, for a third of its cost
        ids = os.urandom(24).hex()  # one call: the trace id (32 hex) and the run's root span (16 hex)
        ctx = RunContext(
            journey=journey, region=agent.region, agent=agent.name, run_id=run_id, state_dir=self.state_dir,
            variables=dict(journey.variables), cookie_jar=aiohttp.CookieJar(unsafe=True), redact=self.redact.child(),
            attempt=attempt, trace_id=ids[:32], traceparent=journey.traceparent,
        )
        ctx.variables = {k: ctx.render(v) for k, v in ctx.variables.items()}
        steps: list[StepResult] = []
        try:
            await self._run_steps(journey, ctx, steps)
        finally:
            await ctx.close()
        duration_ms = (time.perf_counter_ns() - start_ns) / 1e6
        outcome, failed = self._journey_outcome(journey, steps, duration_ms)
        # Over the whole run (its duration includes closing the run's resources), not only its steps.
        loop_lag_ms = max([self.looplag.delay_since(mark), *(s.loop_lag_ms for s in steps)])
        return JourneyResult(
            journey=journey.name, kind=journey.kind, region=agent.region, agent=agent.name, run_id=run_id,
            start_ms=start_ms, outcome=outcome, duration_ms=duration_ms, steps=steps, attempt=attempt,
            tags=journey.tags, failed_step=failed.step if failed else "",
            error=failed.error if failed else None, error_message=failed.error_message if failed else "",
            loop_lag_ms=loop_lag_ms, lagged=loop_lag_ms > self.looplag.threshold_ms,  # (covers every step's mark)
            trace_id=ctx.trace_id, span_id=ids[32:], first_trace_id=first[0], first_span_id=first[1],
        )

    async def _run_steps(self, journey: Journey, ctx: RunContext, out: list[StepResult]) -> None:
        failed = False
        deadline = asyncio.get_running_loop().time() + journey.timeout_s
        for step in journey.steps:
            remaining = deadline - asyncio.get_running_loop().time()
            if (failed or remaining <= 0) and not step.always_run:
                out.append(StepResult(step=step.name, probe=step.kind, outcome=Outcome.SKIPPED,
                                      start_ms=time.time_ns() // 1_000_000))
                continue
            if step.always_run and remaining < step.timeout_s:
                # A cleanup (logout) runs even after the journey timeout, bounded by its own timeout.
                result = await self._run_step(step, ctx, step.timeout_s,
                                              f"step timeout of {step.timeout_s:g}s reached")
            else:
                result = await self._run_step(step, ctx, remaining,
                                              f"journey timeout of {journey.timeout_s:g}s reached during this step")
            if result.substeps:  # (a script's `ctx.step` parts: step points of their own, before the step)
                out.extend(result.substeps)
            out.append(result)
            ctx.variables.update(result.extracted)
            if not result.outcome.ok:
                failed = True

    async def _run_step(self, step: Step, ctx: RunContext, remaining_s: float, timeout_message: str) -> StepResult:
        start_ms = self._unique_ms((ctx.journey.name, step.name), time.time_ns() // 1_000_000)
        mark = self.looplag.mark()
        t0 = time.perf_counter_ns()
        probe = self.probes.get(step.kind)
        prepare(step, ctx)
        spans: list[str] = []
        ctx.request_spans = spans  # the spans this step's requests carry (traceparent's parent ids)
        try:
            if probe.bounds_own_wait and remaining_s >= step.timeout_s:
                result: StepResult = await probe.run(step, ctx)  # its own step timeout comes first
            else:
                async with asyncio.timeout(remaining_s):
                    result = await probe.run(step, ctx)
        except TimeoutError:
            result = StepResult.failure(step.name, step.kind, ErrorClass.TIMEOUT, timeout_message)
        except Exception as e:  # a probe must never take the agent down
            result = StepResult.failure(step.name, step.kind, ErrorClass.INTERNAL, f"{type(e).__name__}: {e}")
        if not result.duration_ms:
            result.duration_ms = (time.perf_counter_ns() - t0) / 1e6
        result.start_ms = start_ms
        result.step, result.probe = step.name, step.kind
        result.span_id, result.request_spans = os.urandom(8).hex(), spans
        result.loop_lag_ms = lag_ms = self.looplag.delay_since(mark)
        result.lagged = lag_ms > self.looplag.threshold_ms
        if result.substeps:
            self._stamp_substeps(result, ctx)
        finish(step, result, ctx)
        if (result.outcome is Outcome.PASSED and step.degraded_latency_s is not None
                and result.duration_ms > step.degraded_latency_s * 1000):
            result.outcome = Outcome.DEGRADED
        return result

    def _stamp_substeps(self, result: StepResult, ctx: RunContext) -> None:
        """Sub-steps share their step's kind and loop-lag mark; their times never repeat either (one key
        per step, not per sub-step name: names made at run time never grow the map)."""
        key = (ctx.journey.name, result.step, "")
        for sub in result.substeps:
            sub.start_ms = self._unique_ms(key, sub.start_ms or result.start_ms)
            sub.probe, sub.loop_lag_ms, sub.lagged = result.probe, result.loop_lag_ms, result.lagged

    @staticmethod
    def _journey_outcome(journey: Journey, steps: list[StepResult],
                         duration_ms: float) -> tuple[Outcome, StepResult | None]:
        return journey_outcome(steps, duration_ms, journey.slo.latency_s)

    async def close(self) -> None:
        self.looplag.stop()
        await self.probes.close()
