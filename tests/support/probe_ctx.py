"""Build the objects a probe works with (Step, RunContext, a spec from YAML) without the runner,
and run one step the way a run does (the core's `prepare` and `finish` around `Probe.run`).

    spec, problems = parse_step("http", 'http: {url: "http://x"}')
    async with run_context(variables={"base": url}, secrets=["s3cret"]) as ctx:
        result = await run_step(probe, make_step(spec), ctx)
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from qos_agent.language.nodes import Problems
from qos_agent.language.secrets import Redactor
from qos_agent.language.yamlload import load_nodes
from qos_agent.model import Extraction, Journey, Location, Step, StepResult
from qos_agent.plugins import registry
from qos_agent.plugins.context import LoadContext, RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.core import finish, prepare
from qos_agent.steps.masking import learn_sources

LOC = Location("journeys.yaml", 1, 1)


def parse_step(kind: str, text: str, file: str = "journeys.yaml") -> tuple[Any, Problems]:
    """The kind's `from_config` of one step written as YAML (the step's mapping: name, http, expect...)."""
    problems = Problems()
    loaded = load_nodes(text, file, {}, problems)
    assert loaded.root is not None, [str(p) for p in problems.sorted()]
    tmp = Path(tempfile.gettempdir())
    spec = registry.step_kind(kind).from_config(loaded.root, problems, LoadContext(config_dir=tmp, state_dir=tmp))
    return spec, problems


def make_step(spec: Any, name: str = "step", kind: str = "http", timeout_s: float = 5.0,
              extract: Iterable[tuple[str, str, str]] = (), headers: Mapping[str, str] | None = None) -> Step:
    """`extract` as (name, source, expr) triples; `headers` the journey's (what the step learns from)."""
    cls = registry.step_kind(kind)
    dynamic, known = learn_sources(cls.sends(spec), (headers or {}).items(), {})
    return Step(name=name, kind=kind, spec=spec, timeout_s=timeout_s, location=LOC,
                extract=tuple(Extraction(n, s, e, LOC) for n, s, e in extract),
                learn=(*dynamic, *(("credential", "", s) for s in known)), heavy=cls.heavy)


async def run_step(probe: Probe, step: Step, ctx: RunContext) -> StepResult:
    """One step as a run does it: the core learns secrets, the probe runs, the core extracts and masks."""
    prepare(step, ctx)
    result = await probe.run(step, ctx)
    finish(step, result, ctx)
    return result


@asynccontextmanager
async def run_context(variables: Mapping[str, str] | None = None, secrets: Iterable[str] = (),
                      headers: Mapping[str, str] | None = None, region: str = "eu-west",
                      agent: str = "agent-1", state_dir: Path | None = None, run_id: str = "run-1",
                      attempt: int = 1) -> AsyncIterator[RunContext]:
    """One journey run's context; its resources (the HTTP session) are closed on exit."""
    journey = Journey(name="j", steps=(), interval_s=60.0, location=LOC,
                      headers=tuple((headers or {}).items()))
    ctx = RunContext(journey=journey, region=region, agent=agent, run_id=run_id, attempt=attempt,
                     state_dir=state_dir or Path(tempfile.gettempdir()), variables=dict(variables or {}),
                     cookie_jar=aiohttp.CookieJar(unsafe=True), redact=Redactor(secrets))
    try:
        yield ctx
    finally:
        await ctx.close()
