"""The `qos-agent` command: parse, then call one function. Exit 0 ok, 1 a journey failed, 2 bad config."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qos_agent import __version__
from qos_agent.errors import ConfigError, SetupError
from qos_agent.language.nodes import parse_duration

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="qos-agent: replays customer journeys and reports what customers feel.")
# Piped output (CI logs) gets 120 columns unless COLUMNS says otherwise; a terminal gets its own width.
out = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)
err = Console(stderr=True, highlight=False)

FileArg = Annotated[Path, typer.Argument(help="journeys file", show_default=True)]
DEFAULT_FILE = Path("journeys.yaml")


def _config_error(e: ConfigError) -> typer.Exit:
    for problem in e.problems:
        err.print(str(problem), markup=False, soft_wrap=True)
    n = len(e.problems)
    err.print(f"{n} problem{'s' if n != 1 else ''} found", markup=False)
    return typer.Exit(2)


def _seconds(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    secs = parse_duration(text)
    if secs is None:
        err.print(f"{option} {text!r} is not a duration (use 250ms, 10s, 5m, 1h)", markup=False)
        raise typer.Exit(2)
    return secs


def _version(value: bool) -> None:
    if value:
        out.print(f"qos-agent {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def validate(file: FileArg = DEFAULT_FILE) -> None:
    """Check journeys.yaml and print every problem, located. Exit 0 or 2."""
    from qos_agent.config.loader import load_config

    try:
        config = load_config(file)
    except ConfigError as e:
        raise _config_error(e) from None
    steps = sum(len(j.steps) for j in config.journeys)
    out.print(f"{file}: valid ({len(config.journeys)} journeys, {steps} steps, "
              f"{len(config.exporters)} exporters)", markup=False)


@app.command()
def check(
    file: FileArg = DEFAULT_FILE,
    journey: Annotated[list[str] | None, typer.Option("--journey", "-j", help="run only this journey "
                                                      "(repeatable)")] = None,
    junit: Annotated[Path | None, typer.Option(help="write JUnit XML here")] = None,
    region: Annotated[str | None, typer.Option(help="act as an agent of this region")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    export: Annotated[bool, typer.Option(help="also send results to the configured exporters")] = False,
) -> None:
    """Run every selected journey once. Exit 0 all passed, 1 a journey failed, 2 bad config."""
    from qos_agent.config.loader import load_config
    from qos_agent.runloop import check as checking
    from qos_agent.runloop import loops

    if fmt not in ("table", "json"):
        err.print(f"--format {fmt!r}: use table or json", markup=False)
        raise typer.Exit(2)
    try:
        config = load_config(file, region=region)
        checking.choose(config, journey or [])
        results = loops.run(checking.run_check(config, journey or [], export=export), config.agent.loop)
        if junit is not None:
            checking.write_junit(config, results, junit)
    except ConfigError as e:
        raise _config_error(e) from None
    except SetupError as e:
        err.print(str(e), markup=False)
        raise typer.Exit(2) from None
    if fmt == "json":
        print(checking.results_json(results))
    else:
        checking.print_summary(results, out)
    raise typer.Exit(checking.exit_code(results))


@app.command()
def run(
    file: FileArg = DEFAULT_FILE,
    region: Annotated[str | None, typer.Option(help="override agent.region")] = None,
    duration: Annotated[str | None, typer.Option(help="stop after this long (e.g. 30s); default: "
                                                 "until SIGTERM")] = None,
    watch: Annotated[bool, typer.Option(help="also reload when the file changes (checked every second)")] = False,
) -> None:
    """The agent: schedule, run, export, until SIGTERM (SIGHUP reloads the file)."""
    from qos_agent.config.loader import load_config
    from qos_agent.runloop import loops
    from qos_agent.runloop.agent import run_agent

    try:
        config = load_config(file, region=region)
        loops.run(run_agent(str(file), region=region, duration_s=_seconds(duration, "--duration"), watch=watch,
                            config=config), config.agent.loop)
    except ConfigError as e:
        raise _config_error(e) from None
    except SetupError as e:
        err.print(str(e), markup=False)
        raise typer.Exit(2) from None


@app.command()
def report(
    db: Annotated[Path | None, typer.Option(help="the SQLite store (default: from journeys.yaml)")] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="journeys file that names the store")] = DEFAULT_FILE,
    since: Annotated[str | None, typer.Option(help="only the last e.g. 1h")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="write a self-contained HTML page (charts) to FILE",
                                              metavar="FILE")] = None,
) -> None:
    """What the embedded store holds: per journey × region runs, success, p50/p95/p99, disruptions."""
    from qos_agent.reports.storepath import store_path
    from qos_agent.reports.table import ReportError, show_report

    since_s = _seconds(since, "--since")
    try:
        path = db or store_path(file)
    except ConfigError as e:
        raise _config_error(e) from None
    if html is not None:
        from qos_agent.reports.html import write_html_report

        try:
            write_html_report(path, html, since_s)
        except (ReportError, OSError) as e:
            err.print(str(e), markup=False, highlight=False)
            raise typer.Exit(1) from None
        out.print(f"wrote {html}", markup=False, highlight=False)
        raise typer.Exit(0)
    raise typer.Exit(show_report(path, since_s, out))


@app.command()
def demo(
    state_dir: Annotated[Path, typer.Option(help="where the shared store goes")] = Path(".qos-agent-demo"),
    interval: Annotated[str, typer.Option(help="each journey's interval")] = "3s",
    fault_at: Annotated[str, typer.Option(help="when ap-south's checkout breaks")] = "20s",
    heal_at: Annotated[str, typer.Option(help="when it heals")] = "45s",
) -> None:
    """Three regions, a fault in one region's checkout while /health stays green, and what uptime missed."""
    from qos_agent.demo.live import Timeline, run_demo
    from qos_agent.reports.table import show_report

    timeline = Timeline(interval_s=_seconds(interval, "--interval") or 3.0,
                        fault_at_s=_seconds(fault_at, "--fault-at") or 20.0,
                        heal_at_s=_seconds(heal_at, "--heal-at") or 45.0)
    timeline.end_at_s = timeline.heal_at_s + 10 * timeline.interval_s
    logging.getLogger().setLevel(logging.ERROR)  # the live view tells the story
    db = asyncio.run(run_demo(state_dir.resolve(), timeline, out))
    out.print()
    raise typer.Exit(show_report(db, None, out))


@app.command()
def schema() -> None:
    """Print the JSON Schema of journeys.yaml (for editors; docs/journeys.schema.json is this output)."""
    from qos_agent.config.schema import schema_text

    print(schema_text(), end="")


@app.command("demo-service")
def demo_service(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: any free one)")] = 8080,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    fault: Annotated[list[str] | None, typer.Option(help="e.g. path=/api/pay,region=ap-south,status=503")] = None,
) -> None:
    """The bundled demo SaaS the sample journeys run against."""
    from qos_agent.demo.service import serve

    try:
        serve(host, port, fault or [])
    except ValueError as e:
        err.print(str(e), markup=False)
        raise typer.Exit(2) from None


def main() -> None:
    app()
