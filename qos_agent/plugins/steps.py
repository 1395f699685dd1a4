"""The step-kind protocol: one class per kind, registered under the entry point group `qos_agent.probes`.

A probe parses its own part of a step in `from_config` (located problems), so validation and the
runner use the one registry; `run` turns one step into a classified StepResult and never raises.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

from qos_agent.language.nodes import Node, Problems
from qos_agent.model import Step, StepResult
from qos_agent.plugins.context import LoadContext, RunContext

SpecT = TypeVar("SpecT")


class Probe(Protocol[SpecT]):
    """One step kind. One instance per agent (it may hold a browser); `run` is called per step.

    Plug-ins subclass this explicitly (`class HttpProbe(Probe[HttpSpec])`) and so inherit the
    defaults of the optional capabilities (`provides`, `start`); `conformance` checks the rest.
    """

    kind: ClassVar[str]
    step_keys: ClassVar[frozenset[str]] = frozenset()  # extra step-level keys it reads (e.g. expect)
    # `check`: each journey runs once, so evidence a probe saves only on a later run (the browser's
    # `trace: on-retry`) is saved on the first; set by the runner's ProbeSet.
    one_shot: bool = False
    # True when `run` bounds all its waiting by `step.timeout_s` itself: the runner then sets no second
    # timer of its own unless the journey's remaining time is shorter (one timer per step, not two).
    bounds_own_wait: ClassVar[bool] = False

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> SpecT | None:
        """Parse `step[kind]` (and step_keys) into a frozen spec; report mistakes to problems."""
        ...

    @classmethod
    def provides(cls, spec: SpecT) -> set[str]:
        """Variable names this step sets beyond `extract:` (e.g. a browser extract action)."""
        return set()

    @classmethod
    def urls(cls, spec: SpecT) -> list[str]:
        """The URLs (templates) a step of this kind calls: its service, for uptime per service."""
        return []

    @classmethod
    def json_schema(cls) -> dict[str, Any] | None:
        """This kind's parts of the JSON Schema (`{step key: schema}`); None: the key is left open."""
        return None

    async def start(self) -> None:
        """Check the probe's setup (a browser present) before the first run; default: nothing."""
        return None  # a body, so mypy does not take the default for an abstract stub

    async def run(self, step: Step, ctx: RunContext) -> StepResult: ...

    async def close(self) -> None: ...


