"""`qos-agent check`: every selected journey once, a readable summary, an exit code for CI."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qos_agent.delivery.pipeline import Pipeline
from qos_agent.delivery.points import points_of
from qos_agent.errors import ConfigError, SetupError
from qos_agent.language.nodes import Node, Problems
from qos_agent.language.secrets import Redactor, redacted_logs
from qos_agent.model import Config, JourneyResult, Location, Outcome
from qos_agent.plugins import registry
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.runloop.placement import select_journeys
from qos_agent.runloop.runner import ProbeSet, Runner

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_ENVIRONMENT = 0, 1, 2, 3


def choose(config: Config, names: Sequence[str]) -> list[str]:
    """Journey names to run: the named ones (any region), else this region's."""
    if not names:
        return [j.name for j in select_journeys(config.journeys, config.agent)]
    known = {j.name for j in config.journeys}
    unknown = [n for n in names if n not in known]
    if unknown:
        loc = Location(config.path, 1, 1)
        problems = Problems()
        for n in unknown:
            problems.add(loc, f"no journey named '{n}'", "journeys: " + ", ".join(sorted(known)))
        raise ConfigError(problems.sorted())
    return list(dict.fromkeys(names))


async def run_check(config: Config, names: Sequence[str], export: bool = False) -> list[JourneyResult]:
    """Run the chosen journeys once each (retries included), bounded by the agent's concurrency."""
    writable_state_dir(Path(config.agent.state_dir))
    redact = Redactor(config.secrets)
    runner = Runner(config, redact, ProbeSet(one_shot=True))
    pipeline = Pipeline.from_config(config, redact) if export else Pipeline([])
    pipeline.start()
    semaphore = asyncio.Semaphore(config.agent.concurrency)

    async def one(name: str) -> list[JourneyResult]:
        journey = config.journey(name)
        assert journey is not None
        async with semaphore:
            return await runner.run(journey)

    with redacted_logs(redact):
        try:
            chosen = choose(config, names)
            await runner.probes.start(j for j in config.journeys if j.name in chosen)
            runs = await asyncio.gather(*(one(n) for n in chosen))
        finally:
            await runner.close()
        results = [r for attempts in runs for r in attempts]
        pipeline.submit(results)
        await pipeline.close()
    return results


def writable_state_dir(path: Path) -> None:
    """state_dir exists and takes a file, or SetupError naming it (exit 3), never a traceback."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SetupError(f"state_dir {path} is not writable: {e.strerror or e} (fix its permissions, or set "
                         "agent.state_dir to a writable directory)") from None


def exit_code(results: Sequence[JourneyResult]) -> int:
    return EXIT_FAILED if any(r.final and not r.outcome.ok for r in results) else EXIT_OK


def write_junit(config: Config, results: Sequence[JourneyResult], path: Path) -> None:
    """Through the registry's junit exporter, so CLI and configured sinks write the same XML."""
    cls = registry.exporter_class("junit")
    loc = Location("--junit", 1, 1)
    node = Node({"type": Node("junit", loc), "path": Node(str(path.resolve()), loc)}, loc)
    problems = Problems()
    spec = cls.from_config(node, problems, LoadContext(Path.cwd(), Path(config.agent.state_dir)))
    if problems:
        raise ConfigError(problems.sorted())
    exporter = cls.create(spec, ExporterEnv(Path(config.agent.state_dir), config.agent.region, config.agent.name,
                                            Redactor(config.secrets), config.agent.trace_url))

    async def go() -> None:
        await exporter.write(points_of(results))
        await exporter.close()

    asyncio.run(go())


def _label(r: JourneyResult) -> str:
    if r.flaky:
        return f"[yellow]FLAKY[/] (attempt {r.attempt})"
    return {
        Outcome.PASSED: "[green]PASSED[/]",
        Outcome.DEGRADED: "[yellow]DEGRADED[/]",
        Outcome.FAILED: "[red bold]FAILED[/]",
        Outcome.SKIPPED: "[dim]SKIPPED[/]",
    }[r.outcome]


def trace_link(trace_id: str, trace_url: str) -> str:
    """The run's trace as a person opens it: `agent.trace_url` with the id, else the id."""
    return trace_url.replace("{trace_id}", trace_id) if trace_url else trace_id


def _why(r: JourneyResult, trace_url: str = "") -> str:
    if r.outcome is Outcome.FAILED:
        why = f"{r.failed_step}: {r.error}: {r.error_message}"
        failed = next((s for s in r.steps if s.step == r.failed_step), None)
        if failed is not None and failed.body_excerpt:  # what the server said (k6 and Checkly show it too)
            why += f"\n  response: {failed.body_excerpt}"
        return why + (f"\n  trace: {trace_link(r.trace_id, trace_url)}" if r.trace_id else "")
    if r.outcome is Outcome.DEGRADED:
        slow = [s.step for s in r.steps if s.outcome is Outcome.DEGRADED]
        return "slower than its objective" + (f" ({', '.join(slow)})" if slow else "")
    return ""


def print_summary(results: Sequence[JourneyResult], console: Console, trace_url: str = "") -> None:
    table = Table(title="qos-agent check", title_justify="left")
    for col, kw in (("journey", {}), ("result", {}), ("duration", {"justify": "right"}), ("steps", {}),
                    ("failed step and why", {"overflow": "fold"})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    finals = [r for r in results if r.final]
    for r in finals:
        steps = " ".join({"passed": "✓", "degraded": "~", "failed": "✗", "skipped": "-"}[s.outcome] for s in r.steps)
        table.add_row(r.journey, _label(r), f"{r.duration_ms:,.0f} ms", steps, _why(r, trace_url))
    console.print(table)
    failed = sum(1 for r in finals if not r.outcome.ok)
    flaky = sum(1 for r in finals if r.flaky)
    summary = f"{len(finals) - failed} passed, {failed} failed" + (f", {flaky} flaky" if flaky else "")
    console.print(("[red bold]" if failed else "[green]") + summary + "[/]")


def results_json(results: Sequence[JourneyResult], trace_url: str = "") -> str:
    """`check --format json`: one object per final run, for scripts."""
    out = []
    for r in results:
        if not r.final:
            continue
        out.append({
            "journey": r.journey, "region": r.region, "outcome": str(r.outcome), "success": r.outcome.ok,
            "flaky": r.flaky, "attempt": r.attempt, "duration_ms": round(r.duration_ms, 3),
            "failed_step": r.failed_step or None, "error": str(r.error) if r.error else None,
            "error_message": r.error_message or None, "trace_id": r.trace_id or None,
            **({"trace_url": trace_link(r.trace_id, trace_url)} if trace_url and r.trace_id else {}),
            "steps": [{"name": s.step, "outcome": str(s.outcome), "duration_ms": round(s.duration_ms, 3),
                       "span_id": s.span_id or None,
                       "error": str(s.error) if s.error else None, "error_message": s.error_message or None,
                       "status_code": s.status_code, "url": s.url or None, "body_excerpt": s.body_excerpt or None,
                       **({"artifacts": s.artifacts} if s.artifacts else {})}
                      for s in r.steps],
        })
    return json.dumps({"passed": exit_code(results) == EXIT_OK, "journeys": out}, indent=2)
