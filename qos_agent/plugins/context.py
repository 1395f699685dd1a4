"""The contexts a plug-in works in: loading its part of journeys.yaml, and one journey run.

`RunContext` is one conversation: the run's steps share its cookie jar, variables, redactor
(what the run learnt is masked too) and resources (an HTTP session, a browser page).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from qos_agent.language.secrets import Redactor
from qos_agent.language.templating import render, render_deep
from qos_agent.model import Journey

if TYPE_CHECKING:  # aiohttp costs ~0.2 s to import: validate, schema and report never need it
    import aiohttp

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadContext:
    """What a plug-in's from_config may need to resolve its settings."""

    config_dir: Path
    state_dir: Path
    files: list[str] = field(default_factory=list)  # read by a plug-in besides journeys.yaml (`depends_on`)

    def depends_on(self, path: Path) -> None:
        """The configuration is made of this file too: `run --watch` reloads when it changes."""
        if str(path) not in self.files:
            self.files.append(str(path))


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
    trace_id: str = ""  # W3C trace id of this attempt (32 hex)
    traceparent: bool = True  # send the header (the journey's and agent's `traceparent:`)
    request_spans: list[str] = field(default_factory=list)  # the current step's requests' span ids
    _resources: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def render(self, text: str) -> str:
        return render(text, self.variables)

    def request_span(self) -> str:
        """A new span id for one request of the current step (recorded on the step's result)."""
        span = os.urandom(8).hex()
        self.request_spans.append(span)
        return span

    def traceparent_header(self) -> str | None:
        """`traceparent` for one request (W3C Trace Context, sampled): the run's trace, a new span of
        the current step as the parent id; None when the journey turned the header off (the span is
        recorded all the same)."""
        span = self.request_span()
        return f"00-{self.trace_id}-{span}-01" if self.traceparent and self.trace_id else None

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
