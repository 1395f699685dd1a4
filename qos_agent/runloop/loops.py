"""Which event loop `run` and `check` use: `agent.loop: auto | asyncio | uvloop`.

uvloop (libuv underneath) runs the same agent with about a quarter less CPU per step on this
project's benches (docs/benchmarks.md), so `auto` takes it wherever it is installed (a dependency on
Linux) and falls back to the standard loop elsewhere. `asyncio` forces the standard loop, e.g. to
compare, or to rule uvloop out while debugging.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from qos_agent.errors import SetupError
from qos_agent.runloop.gctune import tune_gc

T = TypeVar("T")


def loop_factory(mode: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """(the loop's name, a factory for asyncio.Runner; None = the standard loop)."""
    if mode == "asyncio":
        return "asyncio", None
    if importlib.util.find_spec("uvloop") is None:
        if mode == "uvloop":
            raise SetupError("agent.loop is uvloop, but uvloop is not installed "
                             "(pip install uvloop, or set agent.loop: auto)")
        return "asyncio", None
    import uvloop

    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], mode: str = "auto") -> T:
    """asyncio.run on the loop `mode` names, with the collector tuned for many runs in flight."""
    _, factory = loop_factory(mode)
    tune_gc()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    except BaseException:
        main.close()  # never started (e.g. the factory failed): no "never awaited" warning
        raise
