"""The step-kind protocols: what a kind declares (`StepKind`) and what runs its steps (`Probe`).

A kind is one class registered under the entry point group `qos_agent.probes`. It is light to
import: it parses its part of a step (`from_config`, located problems), describes itself (its JSON
Schema, what it yields to `extract:`, what it sends that may carry credentials, whether it needs a
browser) and makes its probe on demand (`probe()`), which is where aiohttp, Playwright or dnspython
are imported. So `validate` and `check` load only the kinds a file uses, and the core — not each
kind — gives every step masking, extraction and its schema (qos_agent/steps).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from qos_agent.language.nodes import Node, Problems
from qos_agent.model import Sends, Step, StepResult
from qos_agent.plugins.context import LoadContext, RunContext

SpecT = TypeVar("SpecT")


@dataclass(frozen=True, slots=True)
class Yields:
    """What a kind's steps give `extract:`; a source reading something not yielded is a load error.

    `body` says in words what `json` and `regex` read ("" = nothing), `headers` enables `header`,
    `cookies` enables `cookie` (the run's jar after the step), `fields` names the result's strings
    `field` may read (a tls step's `cert_issuer`...)."""

    body: str = ""
    headers: bool = False
    cookies: bool = False
    fields: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """The extraction sources these allow, in the order the docs list them."""
        return tuple(source for source, ok in (("json", bool(self.body)), ("regex", bool(self.body)),
                                               ("header", self.headers), ("cookie", self.cookies),
                                               ("field", bool(self.fields))) if ok)


class Probe(Protocol):
    """Runs the steps of one kind: one instance per agent (it may hold a browser).

    `run` turns every failure into a classified StepResult (qos_agent.steps.measure does it for
    most kinds) and never raises; the core then extracts, learns and masks secrets, and stamps it.
    """

    # `check`: each journey runs once, so evidence a probe saves only on a later run (the browser's
    # `trace: on-retry`) is saved on the first; set by the runner's ProbeSet.
    one_shot: bool = False
    # True when `run` bounds all its waiting by `step.timeout_s` itself: the runner then sets no second
    # timer of its own unless the journey's remaining time is shorter (one timer per step, not two).
    bounds_own_wait: ClassVar[bool] = False

    async def start(self) -> None:
        """Check the probe's setup (a browser present) before the first run; default: nothing."""
        return None  # a body, so mypy does not take the default for an abstract stub

    async def run(self, step: Step, ctx: RunContext) -> StepResult: ...

    async def close(self) -> None: ...


class StepKind(Protocol[SpecT]):
    """One step kind, as the loader, the schema and the runner see it. Subclass it explicitly
    (`class HttpKind(StepKind[HttpSpec])`) to inherit the defaults of the optional members."""

    kind: ClassVar[str]
    # "module:Class" of its probe, imported only when a probe is made (the default `probe()`).
    runtime: ClassVar[str] = ""
    step_keys: ClassVar[frozenset[str]] = frozenset()  # extra step-level keys it reads (e.g. expect)
    yields: ClassVar[Yields] = Yields()  # what `extract:` may read; nothing by default
    heavy: ClassVar[bool] = False  # needs a browser: runs take a slot of agent.browser_concurrency

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> SpecT | None:
        """Parse `step[kind]` (and step_keys) into a frozen spec; report mistakes to problems."""
        ...

    @classmethod
    def probe(cls) -> Probe:
        """A new probe for this kind, imported from `runtime` (only `run` and `check` make one)."""
        module, _, name = cls.runtime.partition(":")
        made: Probe = getattr(importlib.import_module(module), name)()
        return made

    @classmethod
    def provides(cls, spec: SpecT) -> set[str]:
        """Variable names this step sets beyond `extract:` (e.g. a browser extract action)."""
        return set()

    @classmethod
    def urls(cls, spec: SpecT) -> list[str]:
        """The URLs (templates) a step of this kind calls: its service, for uptime per service."""
        return []

    @classmethod
    def sends(cls, spec: SpecT) -> Sends:
        """What its steps send that may carry credentials: the core learns the secrets in them."""
        return Sends()

    @classmethod
    def json_schema(cls) -> dict[str, Any] | None:
        """This kind's parts of the JSON Schema (`{step key: schema}`); None: the key is left open."""
        return None
