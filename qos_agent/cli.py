"""The `qos-agent` command: parse, then call one function.

Exit 0 ok, 1 a journey failed, 2 bad config, 3 the environment cannot run it (no Chromium, state_dir
not writable, a step kind's optional extra not installed).
"""

from __future__ import annotations

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
from qos_agent.language.text import one_line, shown

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="qos-agent: replays customer journeys and reports what customers feel.")
# Piped output (CI logs) gets 120 columns unless COLUMNS says otherwise; a terminal gets its own width.
# emoji=False: a problem on line 100 is `FILE:100:5`, never an emoji (rich reads `:100:` as one).
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)
err = Console(stderr=True, highlight=False, emoji=False, markup=False)

# Help in click's conventions (TEXT, PATH, INTEGER; flags without a type): plain click formatting
# (rich_markup_mode=None) and a metavar on every option. Typer labels an argument's type `<path>`
# beside its metavar; the metavar says it already.
setattr(typer.core.TyperArgument, "display_type_rich", lambda self, ctx: None)  # noqa: B010

FileArg = Annotated[Path, typer.Argument(help="journeys file", show_default=True, metavar="FILE")]
DEFAULT_FILE = Path("journeys.yaml")


EXIT_ENVIRONMENT = 3


def _setup_error(e: Exception) -> typer.Exit:
    """The machine cannot run it: one line saying what is missing and how to fix it; exit 3."""
    if isinstance(e, ImportError):
        missing = e.name or str(e)
        err.print(f"a step kind or exporter needs the Python module {missing!r}, which is not installed "
                  f"(pip install the qos-agent extra or plug-in that provides it)", markup=False)
    else:
        err.print(str(e), markup=False)
    return typer.Exit(EXIT_ENVIRONMENT)


def _config_error(e: ConfigError) -> typer.Exit:
    for problem in e.problems:
        err.print(str(problem), markup=False, emoji=False, highlight=False, soft_wrap=True)
    n = len(e.problems)
    err.print(f"{n} problem{'s' if n != 1 else ''} found", markup=False)
    return typer.Exit(2)


def _warnings(warnings: tuple[str, ...]) -> None:
    """Located warnings (a secret too short to mask): the file runs, but the user should know."""
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, soft_wrap=True)


def _seconds(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    secs = parse_duration(text)
    if secs is None:
        err.print(f"{option} {shown(text)} is not a duration (use 250ms, 10s, 5m, 1h)", markup=False)
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
    _warnings(config.warnings)
    steps = sum(len(j.steps) for j in config.journeys)
    out.print(f"{one_line(file, 1000)}: valid ({len(config.journeys)} journeys, {steps} steps, "
              f"{len(config.exporters)} exporters)", markup=False)


@app.command()
def check(
    file: FileArg = DEFAULT_FILE,
    journey: Annotated[list[str] | None, typer.Option("--journey", "-j", metavar="TEXT", help="run only this journey "
                                                      "(repeatable)")] = None,
    junit: Annotated[Path | None, typer.Option(metavar="PATH", help="write JUnit XML here")] = None,
    region: Annotated[str | None, typer.Option(metavar="TEXT", help="act as an agent of this region")] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="[table|json]", help="table or json")] = "table",
    export: Annotated[bool, typer.Option(help="also send results to the configured exporters")] = False,
) -> None:
    """Run every selected journey once. Exit 0 all passed, 1 a journey failed, 2 bad config, 3 cannot run here."""
    from qos_agent.config.loader import load_config
    from qos_agent.runloop import check as checking
    from qos_agent.runloop import loops

    if fmt not in ("table", "json"):
        err.print(f"--format {shown(fmt)}: use table or json", markup=False)
        raise typer.Exit(2)
    try:
        config = load_config(file, region=region)
        _warnings(config.warnings)
        checking.choose(config, journey or [])
        results = loops.run(checking.run_check(config, journey or [], export=export), config.agent.loop)
        if junit is not None:
            checking.write_junit(config, results, junit)
    except ConfigError as e:
        raise _config_error(e) from None
    except (SetupError, ImportError) as e:
        raise _setup_error(e) from None
    if fmt == "json":
        print(checking.results_json(results))
    else:
        checking.print_summary(results, out)
    raise typer.Exit(checking.exit_code(results))


@app.command()
def run(
    file: FileArg = DEFAULT_FILE,
    region: Annotated[str | None, typer.Option(metavar="TEXT", help="override agent.region")] = None,
    duration: Annotated[str | None, typer.Option(metavar="DURATION", help="stop after this long (e.g. 30s); default: "
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
    except (SetupError, ImportError) as e:
        raise _setup_error(e) from None


@app.command()
def report(
    file: Annotated[Path, typer.Option("--file", "-f", metavar="PATH",
                                       help="journeys file: objectives, owners, the store, the influxdb exporter")
                    ] = DEFAULT_FILE,
    db: Annotated[list[Path] | None, typer.Option(
        metavar="PATH", help="a SQLite store, repeatable: one per agent (default: from journeys.yaml)")] = None,
    source: Annotated[str, typer.Option(metavar="TEXT", help="sqlite, influxdb or prometheus")] = "sqlite",
    url: Annotated[str | None, typer.Option(
        metavar="URL", help="Prometheus to read (--source prometheus); for influxdb, instead of the file's url")
                   ] = None,
    since: Annotated[str | None, typer.Option(metavar="DURATION", help="the period ending now, e.g. 24h, 7d "
                                                                      "(default 7d)")] = None,
    period: Annotated[str | None, typer.Option(metavar="TEXT", help="the last whole calendar week, month or "
                                                                   "quarter, in UTC")] = None,
    format: Annotated[str | None, typer.Option("--format", metavar="TEXT", help="table (default), json or markdown")
                      ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="write the scorecard as a self-contained HTML page "
                                                             "(charts) to PATH", metavar="PATH")] = None,
) -> None:
    """The CX scorecard: per customer reason, journey and region, SLO attainment, error budget,
    customer-minutes lost (and hidden from uptime), p50/p95/p99 against the objective, trend."""
    from qos_agent.reports.command import Options, run
    from qos_agent.reports.errors import ReportError

    options = Options(file=file, dbs=list(db or []), source=source, url=url, since=since, period=period,
                      format=format, html=html)
    try:
        code = run(options, out, err)
    except ConfigError as e:
        raise _config_error(e) from None
    except ReportError as e:
        err.print(str(e), markup=False, highlight=False, soft_wrap=True)  # one line, however narrow the terminal
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command()
def demo(
    state_dir: Annotated[Path, typer.Option(metavar="PATH",
                                            help="where the shared store goes")] = Path(".qos-agent-demo"),
    interval: Annotated[str, typer.Option(metavar="DURATION", help="each journey's interval")] = "3s",
    fault_at: Annotated[str, typer.Option(metavar="DURATION", help="when ap-south's checkout breaks")] = "20s",
    heal_at: Annotated[str, typer.Option(metavar="DURATION", help="when it heals")] = "45s",
    alertmanager: Annotated[str, typer.Option(
        metavar="URL", help="send the disruption to Alertmanager: a URL, or 'local' to start Debian's "
                            "prometheus-alertmanager here")] = "",
) -> None:
    """Three regions, a fault in one region's checkout while /health stays green, and what uptime missed."""
    import asyncio

    from qos_agent.demo.live import Timeline, run_demo
    from qos_agent.reports.table import show_report

    timeline = Timeline(interval_s=_seconds(interval, "--interval") or 3.0,
                        fault_at_s=_seconds(fault_at, "--fault-at") or 20.0,
                        heal_at_s=_seconds(heal_at, "--heal-at") or 45.0)
    timeline.end_at_s = timeline.heal_at_s + 10 * timeline.interval_s
    logging.getLogger().setLevel(logging.ERROR)  # the live view tells the story
    try:
        db = asyncio.run(run_demo(state_dir.resolve(), timeline, out, alertmanager))
    except SetupError as e:
        err.print(str(e), markup=False)
        raise typer.Exit(3) from None
    out.print()
    raise typer.Exit(show_report(db, None, out))


@app.command()
def schema() -> None:
    """Print the JSON Schema of journeys.yaml (for editors; docs/journeys.schema.json is this output)."""
    from qos_agent.config.schema import schema_text

    print(schema_text(), end="")


@app.command("demo-service")
def demo_service(
    port: Annotated[int, typer.Option(metavar="INTEGER", help="port on 127.0.0.1 (0: any free one)")] = 8080,
    host: Annotated[str, typer.Option(metavar="TEXT", help="address to bind")] = "127.0.0.1",
    fault: Annotated[list[str] | None, typer.Option(
        metavar="TEXT", help="e.g. path=/api/pay,region=ap-south,status=503 (repeatable)")] = None,
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
