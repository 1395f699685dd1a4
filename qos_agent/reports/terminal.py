"""`qos-agent report` in a terminal: the summary in words, customer reasons, then journey × region.

Figures read as in every output (reports/columns.py); a missed objective is red, a met one green.
The disruptions themselves follow when the source keeps them (SQLite, InfluxDB).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from qos_agent.reports.columns import (
    COMPACT_HEADERS,
    REASON_HEADERS,
    RIGHT,
    ROW_HEADERS,
    compact_cells,
    reason_cells,
    reason_line,
    row_cells,
)
from qos_agent.reports.figures import Disruption
from qos_agent.reports.scorecard import Row, Scorecard
from qos_agent.reports.table import render_disruptions
from qos_agent.reports.words import caveats, headline, period_line, uptime_line

NAMES = {"journey", "journeys", "region", "owner", "owners"}  # never wrapped: the other columns give way first


def _table(title: str, headers: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in headers:
        table.add_column(name, justify="right" if name in RIGHT else "left", overflow="fold",
                         no_wrap=name in NAMES)
    return table


def _fits(table: Table, console: Console) -> bool:
    return Measurement.get(console, console.options.update_width(100_000), table).maximum <= console.width


def _reasons(card: Scorecard, console: Console) -> None:
    """The customer reasons as a table, journeys one a line and never folded, where the terminal is
    wide enough for it; else a line of words each (an 80-column terminal folded every cell)."""
    table = _table("Customer reasons", REASON_HEADERS)
    for reason in card.reasons:
        style = {True: "green", False: "red", None: ""}[reason.met]
        table.add_row(*reason_cells(reason, journeys_sep="\n"), style=style or None)
    if _fits(table, console):
        console.print(table)
        return
    console.print("Customer reasons", markup=False, highlight=False)
    for reason in card.reasons:
        style = {True: "green", False: "red", None: ""}[reason.met]
        console.print(Padding(Text(f"· {reason_line(reason)}", style=style), (0, 0, 0, 2)))


def _rows(card_rows: Sequence[Row], console: Console) -> Table:
    """Journey × region: every column where the terminal is wide enough for them unwrapped; else the
    page's compact columns (success and p95 beside their objectives, the trend in one cell), so a
    120-column CI log or terminal never folds a journey's name letter by letter."""
    title = "Journeys × regions (final runs; latency of on-time runs)"
    for headers, cells in ((ROW_HEADERS, row_cells), (COMPACT_HEADERS, compact_cells)):
        table = _table(title, headers)
        for row in card_rows:
            style = {True: "green", False: "red", None: ""}[row.now.met]
            table.add_row(*cells(row), style=style or None)
        if _fits(table, console):
            break
    return table


def render(card: Scorecard, disruptions: list[Disruption] | None, console: Console) -> None:
    console.print(f"CX scorecard — {period_line(card)} — from {card.source}", markup=False, highlight=False)
    console.print(headline(card), markup=False, highlight=False)
    for note in caveats(card):
        console.print(f"  · {note}", markup=False, highlight=False)
    if not card.rows:
        return
    _reasons(card, console)
    console.print(_rows(card.rows, console))
    if card.uptime:
        console.print(uptime_line(card), markup=False, highlight=False)
    if disruptions:
        render_disruptions(disruptions, console, now_ms=card.generated_ms)
