"""Running a script's coroutine so that nothing it does can end the agent, and timing what it holds.

`run_guarded` runs the user's coroutine as its own task and returns what it raised (an exception
is a value here: `SystemExit` and `KeyboardInterrupt` escaping a task would stop the event loop).
When the step's time is up the task is cancelled; a script that swallows the cancellation is left
behind after a short grace, named in a warning, so the step still ends on time.

`Driven` steps the coroutine itself and times each stretch it runs without yielding to the event
loop: a script that blocks the loop (time.sleep, a CPU-bound loop, blocking I/O) cannot be
pre-empted in-process, but its longest stretch and the lines around it are known, so the warning
names the step and the place (the runner's loop-lag mark flags the samples as `lagged`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from typing import Any

from probes.script.failures import awaiting_line

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 1.0  # a cancelled script has this long to unwind before it is left behind


@dataclass(slots=True)
class Held:
    """The longest stretch the script ran without yielding: its length and the script's lines around it."""

    ms: float = 0.0
    from_line: int = 0  # where the script was suspended before the stretch (0: its start)
    to_line: int = 0  # where it was suspended after it (0: it returned or raised)

    def place(self, label: str) -> str:
        """`steps/pay.py between lines 12 and 15` (as much as is known)."""
        a, b = self.from_line, self.to_line
        lines = (f"between lines {a} and {b}" if a and b else f"before line {b}" if b else
                 f"after line {a}" if a else "")
        return f"{label} {lines}".rstrip()


class Driven:
    """An awaitable that steps `coro` and records the longest synchronous stretch in `held`."""

    def __init__(self, coro: Coroutine[Any, Any, Any], file: str) -> None:
        self.coro = coro
        self.file = file
        self.held = Held()

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        value: Any = None
        error: BaseException | None = None
        started = False
        while True:
            frame = getattr(coro, "cr_frame", None)  # its own line: cheap at every step (the deep one: rarely)
            before = frame.f_lineno if started and frame is not None and frame.f_code.co_filename == self.file else 0
            started = True
            t0 = time.perf_counter_ns()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                self._clock(t0, before, 0)
                return done.value
            except BaseException:
                self._clock(t0, before, 0)
                raise
            self._clock(t0, before, -1)
            value, error = None, None
            try:
                value = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like: thrown into the script
                error = exc

    def _clock(self, t0: int, before: int, after: int) -> None:
        ms = (time.perf_counter_ns() - t0) / 1e6
        if ms > self.held.ms:
            line = awaiting_line(self.coro, self.file) if after < 0 else after
            self.held = Held(ms, before, line)


async def _guarded(driven: Driven) -> BaseException | None:
    try:
        await driven
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too: a result, never the loop's end
        return exc
    return None


class ScriptRun:
    """One call of a script function: `await run()` gives what it raised (None: it returned)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], file: str, label: str) -> None:
        self.driven = Driven(coro, file)
        self.label = label
        self.waiting_at = 0  # the script's line it was waiting at when its time ran out

    async def run(self) -> BaseException | None:
        task = asyncio.get_running_loop().create_task(_guarded(self.driven))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:  # the step's timeout (or the agent stopping)
            self.waiting_at = awaiting_line(self.driven.coro, self.driven.file)
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
            if not task.done():
                log.warning("script %s ignored its cancellation (it catches CancelledError?) and is left "
                            "running in the background", self.label)
            raise
