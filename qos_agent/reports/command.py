"""`qos-agent report`: pick the source, read this period and the one before, print the scorecard.

The CLI parses options and calls `run`; everything that can go wrong here (a bad --since, an unknown
source, an unreachable URL, a missing store) is a `ReportError` or a located `ConfigError` the CLI
prints as one line with exit code 2. Exit 1: the period holds no runs (the scorecard still says so).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from qos_agent.reports import html, markdown, terminal
from qos_agent.reports.charts import bucket_ms_for
from qos_agent.reports.errors import ReportError
from qos_agent.reports.journeyfile import influx_settings, read_journeys, trace_url
from qos_agent.reports.period import Window, choose
from qos_agent.reports.scorecard import Scorecard, build
from qos_agent.reports.sources import SOURCES, Source
from qos_agent.reports.storepath import keeps_a_store, store_path

FORMATS = ("table", "json", "markdown")
EXIT_NO_DATA = 1
FAILED_RUNS_SHOWN = 50  # the page's "Failed runs": the newest, each with its trace


@dataclass(frozen=True, slots=True)
class Options:
    file: Path = Path("journeys.yaml")
    dbs: list[Path] = field(default_factory=list)
    source: str = "sqlite"
    url: str | None = None
    since: str | None = None
    period: str | None = None
    format: str | None = None  # None: the table (or, with --html, only the page)
    html: Path | None = None


def open_source(options: Options) -> Source:
    if options.source not in SOURCES:
        raise ReportError(f"--source {options.source!r} is not one of {', '.join(SOURCES)}")
    if options.dbs and options.source != "sqlite":
        raise ReportError(f"--db reads SQLite stores; --source {options.source} reads no --db")
    if options.source == "sqlite":
        if options.url:
            raise ReportError("--url is for --source influxdb or prometheus; SQLite stores are given with --db")
        from qos_agent.reports.sources.sqlite import SqliteSource

        if not options.dbs:
            path = store_path(options.file)
            if not path.is_file() and not keeps_a_store(options.file):
                raise ReportError(f"{options.file}: exporters: leaves out sqlite, so no agent of this file keeps a "
                                  f"store for report to read (none at {path}); add '- type: sqlite' under exporters:, "
                                  "or read --source influxdb or --source prometheus --url URL")
        return SqliteSource(options.dbs or [store_path(options.file)])
    if options.source == "influxdb":
        from qos_agent.reports.sources.influxdb import InfluxSource

        return InfluxSource(influx_settings(options.file, options.url))
    if not options.url:
        raise ReportError("--source prometheus needs --url: the Prometheus that scrapes the agents or receives "
                          "their remote write, e.g. --url http://prometheus:9090")
    from qos_agent.reports.sources.prometheus import PrometheusSource

    return PrometheusSource(options.url)


def timeline_window(card: Scorecard, first_ms: int | None) -> tuple[Window, int]:
    """The charts' span and bucket: from the period's first run (its bucket) to the period's end, so
    a region that started late shows its empty start, and a store of two hours is not drawn as a week."""
    start = max(card.window.from_ms, first_ms if first_ms is not None else card.window.from_ms)
    bucket = bucket_ms_for(card.window.to_ms - start)
    return Window(max(card.window.from_ms, start // bucket * bucket), card.window.to_ms, card.window.label), bucket


def read(options: Options, now_ms: int) -> tuple[Source, Scorecard]:
    if options.format is not None and options.format not in FORMATS:
        raise ReportError(f"--format {options.format!r} is not one of {', '.join(FORMATS)}")
    window, previous = choose(options.since, options.period, now_ms)
    journeys = read_journeys(options.file)
    source = open_source(options)
    with ThreadPoolExecutor(2) as pool:  # the two periods at once: the servers (and SQLite) work in parallel
        now_read, before_read = pool.submit(source.figures, window), pool.submit(source.figures, previous)
        current, before = now_read.result(), before_read.result()
    card = build(current, before, journeys, source=source.description, read_file=bool(journeys),
                 generated_ms=now_ms)
    return source, card


def run(options: Options, out: Console, err: Console, now_ms: int | None = None) -> int:
    """The whole command; the exit code (0, or 1 when the period holds no runs). Raises ReportError."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    source, card = read(options, now)
    has_runs = any(r.now.runs for r in card.rows)
    if options.html is not None:
        first = min((r.first_run_ms for r in card.rows if r.first_run_ms is not None), default=None)
        frame, bucket = timeline_window(card, first)
        timeline = source.timeline(frame, bucket) if has_runs else None
        page = html.render_html(card, timeline, source.disruptions(card.window),
                                source.failed_runs(card.window, FAILED_RUNS_SHOWN), trace_url(options.file))
        try:
            html.write_html(page, options.html)
        except OSError as e:
            raise ReportError(f"cannot write {options.html}: {e.strerror or e}") from None
        (err if options.format else out).print(f"wrote {options.html}", markup=False, highlight=False)
        if options.format is None:
            return 0 if has_runs else EXIT_NO_DATA
    shape = options.format or "table"
    if shape == "json":
        print(json.dumps(card.to_json(), indent=2))
    elif shape == "markdown":
        print(markdown.render(card), end="")
    else:
        terminal.render(card, source.disruptions(card.window), out)
    return 0 if has_runs else EXIT_NO_DATA
