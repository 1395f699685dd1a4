"""The one probe wrapper: a step's exchange under its timeout, timed, every failure classified.

`measured(step, kind, body)` runs `body(result)` and turns what went wrong into the result: a
`StepFailure` (the agent's one "step failed" exception) keeps its class and message, a timeout is
`timeout` naming the stage reached, anything else goes to the kind's `classify` (aiohttp's errors
for http and websocket) or is `internal`. It never raises, except for cancellation, which belongs
to the caller. Masking, extraction and stamping are the runner's (qos_agent/steps, runloop/runner).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from qos_agent.errors import StepFailure
from qos_agent.language.text import one_line
from qos_agent.model import ErrorClass, Outcome, Step, StepResult

Body = Callable[[StepResult], Awaitable[None]]
Classify = Callable[[BaseException], tuple[ErrorClass, str]]


def _no_stage() -> str:
    return "waiting for the server"


def check_latency(elapsed_s: float, limit_s: float | None) -> None:
    """`expect: {latency: ...}` of any kind: slower than the limit is an `assertion` failure."""
    if limit_s is not None and elapsed_s > limit_s:
        raise StepFailure(ErrorClass.ASSERTION, latency_failure(elapsed_s, limit_s))


def latency_failure(elapsed_s: float, limit_s: float) -> str:
    return f"latency {elapsed_s * 1000:.0f}ms, expected under {limit_s * 1000:.0f}ms"


def unexpected(exc: BaseException) -> tuple[ErrorClass, str]:
    """An exception no kind expected: class `internal`, named, one bounded line."""
    return ErrorClass.INTERNAL, one_line(f"{type(exc).__name__}: {exc}", 200)


async def measured(step: Step, kind: str, body: Body, stage: Callable[[], str] = _no_stage,
                   classify: Classify = unexpected) -> StepResult:
    """The step's result: `body` fills it; its duration is the whole exchange unless `body` set one."""
    result = StepResult(step=step.name, probe=kind, outcome=Outcome.PASSED, start_ms=time.time_ns() // 1_000_000)
    t0 = time.perf_counter_ns()
    try:
        async with asyncio.timeout(step.timeout_s):
            await body(result)
    except StepFailure as exc:
        result.outcome, result.error, result.error_message = Outcome.FAILED, exc.error, exc.message
    except TimeoutError:
        result.outcome, result.error = Outcome.FAILED, ErrorClass.TIMEOUT
        result.error_message = f"timed out after {step.timeout_s:g}s ({stage()})"
    except Exception as exc:
        result.outcome = Outcome.FAILED
        result.error, result.error_message = classify(exc)
    if not result.duration_ms:
        result.duration_ms = round((time.perf_counter_ns() - t0) / 1e6, 3)
    return result
