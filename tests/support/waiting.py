"""Bounded polling for the tests: one way to wait, one way to fail.

    body = wait_for(lambda: agent.healthz()[1]["last_run"], 30, "a first run")   # blocking code
    await until(lambda: sink.stats.depth == 0, 20, "the queue drained")          # on the event loop

A test waits for a state it cannot be told about (another process, a server, a task); a fixed sleep is
either too short on a busy machine or wastes time on an idle one, so the tests poll. Both helpers return
the first truthy value `check` gives, and after `limit_s` fail with AssertionError (a test failure, not
an error) naming what was awaited, the limit and the last value seen, plus `detail()` if given (say, a
process's output), since a bare "timed out" says nothing about why.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

T = TypeVar("T")


def _failure(check: Callable[[], object], limit_s: float, what: str, last: str,
             detail: Callable[[], str] | None) -> AssertionError:
    if not what:  # a lambda's name says little: where it is written does
        code = getattr(check, "__code__", None)
        what = f"{getattr(check, '__qualname__', check)}" + (
            f" ({Path(code.co_filename).name}:{code.co_firstlineno})" if code is not None else "")
    message = f"{what}: not within {limit_s} s (last: {last})"
    return AssertionError(f"{message}\n{detail()}" if detail is not None else message)


def wait_for(check: Callable[[], T | None], limit_s: float = 10.0, what: str = "", *, every: float = 0.1,
             pause: Callable[[float], None] = time.sleep, detail: Callable[[], str] | None = None) -> T:
    """Call `check` every `every` s until it returns something truthy, which is returned; fail after `limit_s`.
    `pause` waits between calls (a test whose server runs on an event loop of its own pumps that loop)."""
    deadline = time.monotonic() + limit_s
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise _failure(check, limit_s, what, repr(value), detail)
        pause(min(every, left))  # the last look comes at the deadline, not up to `every` past it


@overload
async def until(check: Callable[[], Awaitable[T | None]], limit_s: float = 10.0, what: str = "", *,
                every: float = 0.05, detail: Callable[[], str] | None = None) -> T: ...
@overload
async def until(check: Callable[[], T | None], limit_s: float = 10.0, what: str = "", *,
                every: float = 0.05, detail: Callable[[], str] | None = None) -> T: ...
async def until(check: Callable[[], Any], limit_s: float = 10.0, what: str = "", *,
                every: float = 0.05, detail: Callable[[], str] | None = None) -> Any:
    """`wait_for` without blocking the event loop; `check` may return a value or an awaitable (an
    `async def`, awaited). An awaited check is cut off at the deadline too (one hanging request must not
    hang the test), but the last look, made at the deadline, gets one `every` to answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    seen: Any = None
    while True:
        value = check()
        if inspect.isawaitable(value):
            bound = asyncio.timeout_at(max(deadline, loop.time() + every))
            try:
                async with bound:
                    value = await value
            except TimeoutError:
                if not bound.expired():
                    raise  # the check's own TimeoutError, not the deadline
                raise _failure(check, limit_s, what, f"{seen!r}, then no answer", detail) from None
        if value:
            return value
        seen = value
        left = deadline - loop.time()
        if left <= 0:
            raise _failure(check, limit_s, what, repr(value), detail)
        await asyncio.sleep(min(every, left))


__all__ = ["until", "wait_for"]
