"""The two plug-in protocols (probes, exporters) and the per-run context a probe works in.

A probe is one class per step kind, registered under an entry point of group `qos_agent.probes`;
an exporter likewise under `qos_agent.exporters`. Both parse their own part of journeys.yaml in
`from_config`, reporting located problems, so validation and the runner use the one registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import aiohttp

from qos_agent.language.nodes import Node, Problems
from qos_agent.language.secrets import Redactor
from qos_agent.language.templating import render, render_deep
from qos_agent.model import Journey, Point, Step, StepResult

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadContext:
    """What a plug-in's from_config may need to resolve its settings."""

    config_dir: Path
    state_dir: Path


class Probe(Protocol):
    """One step kind. One instance per agent (it may hold a browser); `run` is called per step."""

    kind: ClassVar[str]
    step_keys: ClassVar[frozenset[str]]  # extra step-level keys it reads besides its own (e.g. expect)

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> Any:
        """Parse `step[kind]` (and step_keys) into a frozen spec; report mistakes to problems."""
        ...

    @classmethod
    def provides(cls, spec: Any) -> set[str]:
        """Variable names this step sets beyond `extract:` (e.g. a browser extract action)."""
        ...

    async def run(self, step: Step, ctx: RunContext) -> StepResult: ...

    async def close(self) -> None: ...


class Exporter(Protocol):
    """One sink. `write` gets points of the metrics schema; `close` flushes."""

    type: ClassVar[str]
    spooled: ClassVar[bool]  # True for network sinks: they write through the durable spool

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> Any: ...

    @classmethod
    def create(cls, spec: Any, env: ExporterEnv) -> Exporter: ...

    async def write(self, points: Sequence[Point]) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class ExporterEnv:
    """What an exporter instance may use at run time."""

    state_dir: Path
    region: str
    agent: str
    redact: Redactor = field(default_factory=Redactor)


@dataclass(slots=True)
class RunContext:
    """One journey run: one conversation. Steps share the cookie jar, variables and resources."""

    journey: Journey
    region: str
    agent: str
    run_id: str
    state_dir: Path
    variables: dict[str, str]
    cookie_jar: aiohttp.CookieJar
    redact: Redactor
    attempt: int = 1
    _resources: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def render(self, text: str) -> str:
        return render(text, self.variables)

    def render_deep(self, value: object) -> object:
        return render_deep(value, self.variables)

    async def resource(self, key: str, make: Callable[[], Awaitable[tuple[T, Callable[[], Awaitable[None]]]]]) -> T:
        """A per-run resource (HTTP session, browser page), made on first use, closed after the run."""
        if key not in self._resources:
            value, close = await make()
            self._resources[key] = value
            self._closers.append(close)
        return self._resources[key]  # type: ignore[no-any-return]

    def peek(self, key: str) -> Any:
        return self._resources.get(key)

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts" / self.journey.name / self.run_id

    async def close(self) -> None:
        """Close resources newest first; one failing close never stops the others."""
        while self._closers:
            close = self._closers.pop()
            with contextlib.suppress(Exception):
                await close()
        self._resources.clear()
