"""Build the objects a probe works with (Step, RunContext, a spec from YAML) without the runner.

    spec, problems = parse_step(HttpProbe, 'http: {url: "http://x"}')
    async with run_context(variables={"base": url}, secrets=["s3cret"]) as ctx:
        result = await probe.run(make_step(spec), ctx)
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
from qos_agent.model import Extraction, Journey, Location, Step
from qos_agent.plugins.context import LoadContext, RunContext

LOC = Location("journeys.yaml", 1, 1)


def parse_step(probe: Any, text: str, file: str = "journeys.yaml") -> tuple[Any, Problems]:
    """`from_config` of one step written as YAML (the step's mapping: name, http, expect...)."""
    problems = Problems()
    loaded = load_nodes(text, file, {}, problems)
    assert loaded.root is not None, [str(p) for p in problems.sorted()]
    tmp = Path(tempfile.gettempdir())
    spec = probe.from_config(loaded.root, problems, LoadContext(config_dir=tmp, state_dir=tmp))
    return spec, problems


def make_step(spec: Any, name: str = "step", kind: str = "http", timeout_s: float = 5.0,
              extract: Iterable[tuple[str, str, str]] = ()) -> Step:
    """`extract` as (name, source, expr) triples."""
    return Step(name=name, kind=kind, spec=spec, timeout_s=timeout_s, location=LOC,
                extract=tuple(Extraction(n, s, e, LOC) for n, s, e in extract))


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
