"""A script's module at run time: imported once per agent and content, in a thread, from the vetted bytes.

The bytes the loader vetted (`ScriptSpec.source`) are what is executed, so the code that runs is
the code that was validated, whatever happened to the file since; a reload with a changed file
brings new bytes, a new digest and so a new module (the old one is dropped from sys.modules).
The module's top level runs in a worker thread, so a slow import never stalls the event loop,
and its outcome, a function or the reason there is none, is cached: a module that fails to
import is not run again at every run. Modules the script imports itself are Python's to cache.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from probes.script.config import ScriptSpec
from probes.script.vet import describe_import_error, execute, module_name

ScriptFunction = Callable[[Any], Coroutine[Any, Any, Any]]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A script module's import: its namespace, or why it failed (`error`, the script's `line`)."""

    namespace: dict[str, Any]
    error: str = ""
    line: int = 0


def _import(spec: ScriptSpec, name: str) -> Loaded:
    try:
        return Loaded(vars(execute(spec.file, spec.source, name)))
    except BaseException as exc:  # SystemExit at import too: a result, never the agent's end
        what, line = describe_import_error(exc, spec.file)
        return Loaded({}, what, line)


class ScriptModules:
    """The agent's script modules, by file and content (the probe holds one)."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], Loaded] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[Loaded]] = {}
        self._current: dict[str, str] = {}  # file -> module name imported last (dropped on a new content)

    async def load(self, spec: ScriptSpec) -> Loaded:
        """The module of this spec's content; runs starting at once share one import. An import
        that outlives a step's timeout goes on in its thread and serves the later runs."""
        key = (spec.file, spec.digest)
        loaded = self._loaded.get(key)
        if loaded is not None:
            return loaded
        pending = self._pending.get(key)
        if pending is None:
            name = module_name(spec.file, spec.digest)
            pending = asyncio.ensure_future(asyncio.to_thread(_import, spec, name))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._imported(key, name, done))
        return await asyncio.shield(pending)

    def _imported(self, key: tuple[str, str], name: str, done: asyncio.Future[Loaded]) -> None:
        self._pending.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        file = key[0]
        old = self._current.get(file)
        if old is not None and old != name:  # a reload brought new content: the old module goes
            sys.modules.pop(old, None)
            self._loaded = {k: v for k, v in self._loaded.items() if k[0] != file}
        self._loaded[key] = done.result()
        self._current[file] = name

    @staticmethod
    def function(loaded: Loaded, spec: ScriptSpec) -> ScriptFunction | None:
        found = loaded.namespace.get(spec.function)
        return found if callable(found) else None
