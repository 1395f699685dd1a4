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
from qos_agent.language.problems_json import problems_json
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
# -v works before the command and after it: `qos-agent -v check` and `qos-agent check -v`.
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")]


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


def _verbose(verbose: bool) -> None:
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
    verbose: VerboseOpt = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command(short_help="Check journeys.yaml: every problem, located (exit 0 or 2).")
def validate(
    file: FileArg = DEFAULT_FILE,
    fmt: Annotated[str, typer.Option("--format", metavar="[text|json]", help="text or json")] = "text",
    verbose: VerboseOpt = False,
) -> None:
    """Check journeys.yaml and print every problem, located. Exit 0 or 2.

    --format json prints {"valid": bool, "problems": [{"file", "line", "column", "message"}],
    "warnings": [...]} on stdout (an editor or a CI step reads it), with the same exit code."""
    from qos_agent.config.loader import load_config

    _verbose(verbose)
    if fmt not in ("text", "json"):
        err.print(f"--format {shown(fmt)}: use text or json", markup=False)
        raise typer.Exit(2)
    try:
        config = load_config(file)
    except ConfigError as e:
        if fmt == "json":
            print(problems_json(False, e.problems, ()))
            raise typer.Exit(2) from None
        raise _config_error(e) from None
    if fmt == "json":
        print(problems_json(True, (), config.warnings))
        raise typer.Exit(0)
    _warnings(config.warnings)
    steps = sum(len(j.steps) for j in config.journeys)
    out.print(f"{one_line(file, 1000)}: valid ({len(config.journeys)} journeys, {steps} steps, "
              f"{len(config.exporters)} exporters)", markup=False)


@app.command(short_help="Run each journey once, for CI: exit 0 passed, 1 failed.")
def check(
    file: FileArg = DEFAULT_FILE,
    journey: Annotated[list[str] | None, typer.Option("--journey", "-j", metavar="TEXT", help="run only this journey "
                                                      "(repeatable)")] = None,
    junit: Annotated[Path | None, typer.Option(metavar="PATH", help="write JUnit XML here")] = None,
    region: Annotated[str | None, typer.Option(metavar="TEXT", help="act as an agent of this region")] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="[table|json]", help="table or json")] = "table",
    export: Annotated[bool, typer.Option(help="also send results to the configured exporters")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run every selected journey once. Exit 0 all passed, 1 a journey failed, 2 bad config, 3 cannot run here."""
    from qos_agent.config.loader import load_config
    from qos_agent.runloop import check as checking
    from qos_agent.runloop import loops

    _verbose(verbose)
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
        print(checking.results_json(results, config.agent.trace_url))
    else:
        checking.print_summary(results, out, config.agent.trace_url)
    raise typer.Exit(checking.exit_code(results))


@app.command(short_help="The agent: run journeys on their intervals until SIGTERM.")
def run(
    file: FileArg = DEFAULT_FILE,
    journey: Annotated[list[str] | None, typer.Option("--journey", "-j", metavar="TEXT", help="run only this "
                                                      "journey (repeatable; kept across reloads)")] = None,
    region: Annotated[str | None, typer.Option(metavar="TEXT", help="override agent.region")] = None,
    duration: Annotated[str | None, typer.Option(metavar="DURATION", help="stop after this long (e.g. 30s); default: "
                                                 "until SIGTERM")] = None,
    watch: Annotated[bool, typer.Option(help="also reload when the file changes (checked every second)")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """The agent: schedule, run, export, until SIGTERM (SIGHUP reloads the file)."""
    from qos_agent.config.loader import load_config
    from qos_agent.runloop import check as checking
    from qos_agent.runloop import loops
    from qos_agent.runloop.agent import run_agent

    _verbose(verbose)
    try:
        config = load_config(file, region=region)
        checking.choose(config, journey or [])  # an unknown name is a clear error, as for check
        loops.run(run_agent(str(file), region=region, duration_s=_seconds(duration, "--duration"), watch=watch,
                            config=config, only=frozenset(journey or ())), config.agent.loop)
    except ConfigError as e:
        raise _config_error(e) from None
    except (SetupError, ImportError) as e:
        raise _setup_error(e) from None


@app.command(short_help="What the results say: success, latency, disruptions.")
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
    verbose: VerboseOpt = False,
) -> None:
    """The CX scorecard: per customer reason, journey and region, SLO attainment, error budget,
    customer-minutes lost (and hidden from uptime), p50/p95/p99 against the objective, trend."""
    from qos_agent.reports.command import Options, run
    from qos_agent.reports.errors import ReportError

    _verbose(verbose)
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


@app.command(short_help="Three regions, one broken, and what uptime missed.")
def demo(
    state_dir: Annotated[Path, typer.Option(metavar="PATH",
                                            help="where the shared store goes")] = Path(".qos-agent-demo"),
    interval: Annotated[str, typer.Option(metavar="DURATION", help="each journey's interval")] = "3s",
    fault_at: Annotated[str, typer.Option(metavar="DURATION", help="when ap-south's checkout breaks")] = "20s",
    heal_at: Annotated[str, typer.Option(metavar="DURATION", help="when it heals")] = "45s",
    alertmanager: Annotated[str, typer.Option(
        metavar="URL", help="send the disruption to Alertmanager: a URL, or 'local' to start Debian's "
                            "prometheus-alertmanager here")] = "",
    verbose: VerboseOpt = False,
) -> None:
    """Three regions, a fault in one region's checkout while /health stays green, and what uptime missed."""
    import asyncio

    from qos_agent.demo.live import Timeline, run_demo
    from qos_agent.reports.table import show_report

    timeline = Timeline(interval_s=_seconds(interval, "--interval") or 3.0,
                        fault_at_s=_seconds(fault_at, "--fault-at") or 20.0,
                        heal_at_s=_seconds(heal_at, "--heal-at") or 45.0)
    timeline.end_at_s = timeline.heal_at_s + 10 * timeline.interval_s
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.ERROR)  # the live view tells the story
    try:
        db = asyncio.run(run_demo(state_dir.resolve(), timeline, out, alertmanager))
    except SetupError as e:
        err.print(str(e), markup=False)
        raise typer.Exit(3) from None
    out.print()
    raise typer.Exit(show_report(db, None, out))


@app.command(short_help="Print the JSON Schema of journeys.yaml (for editors).")
def schema(verbose: VerboseOpt = False) -> None:
    """Print the JSON Schema of journeys.yaml (for editors; docs/journeys.schema.json is this output)."""
    from qos_agent.config.schema import schema_text

    _verbose(verbose)
    print(schema_text(), end="")


@app.command(short_help="Write a first, commented journeys.yaml for a URL.")
def init(
    url: Annotated[str, typer.Argument(metavar="URL", help="the service to watch, e.g. https://shop.example")],
    force: Annotated[bool, typer.Option(help="overwrite an existing journeys.yaml")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Write a commented journeys.yaml in this directory for URL: an uptime journey, an API journey
    and a browser step, shaped by what URL answers now. It validates, and `check` passes against it."""
    from qos_agent.config.loader import load_config
    from qos_agent.config.scaffold import write_journeys

    _verbose(verbose)
    try:
        path, seen = write_journeys(url, DEFAULT_FILE, force)
    except (ValueError, FileExistsError, OSError) as e:
        err.print(str(e), markup=False)
        raise typer.Exit(2) from None
    try:
        load_config(path)
    except ConfigError as e:  # a bug in the template: say so, never leave a file that does not validate
        raise _config_error(e) from None
    out.print(f"wrote {path} for {url}", markup=False, highlight=False)
    if seen.status is None:
        out.print(f"note: {url} did not answer just now; the expectations are the generic ones", markup=False)
    out.print("next: qos-agent validate, then qos-agent check (docs/journeys.md has the language)", markup=False)


@app.command("demo-service", short_help="The bundled demo SaaS, with fault knobs.")
def demo_service(
    port: Annotated[int, typer.Option(metavar="INTEGER", help="port on 127.0.0.1 (0: any free one)")] = 8080,
    host: Annotated[str, typer.Option(metavar="TEXT", help="address to bind")] = "127.0.0.1",
    fault: Annotated[list[str] | None, typer.Option(
        metavar="TEXT", help="e.g. path=/api/pay,region=ap-south,status=503 (repeatable; docs/demo.md)")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """The bundled demo SaaS the sample journeys run against; faults via --fault or /admin/faults."""
    from qos_agent.demo.service import serve

    _verbose(verbose)
    try:
        serve(host, port, fault or [])
    except ValueError as e:
        err.print(str(e), markup=False)
        raise typer.Exit(2) from None


def main() -> None:
    app()
