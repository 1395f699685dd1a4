"""`qos-agent report` in a terminal: the summary in words, customer reasons, then journey × region.

Figures read as in every output (reports/columns.py); a missed objective is red, a met one green.
The disruptions themselves follow when the source keeps them (SQLite, InfluxDB).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from qos_agent.reports.columns import REASON_HEADERS, RIGHT, ROW_HEADERS, reason_cells, row_cells
from qos_agent.reports.figures import Disruption
from qos_agent.reports.scorecard import Scorecard
from qos_agent.reports.table import render_disruptions
from qos_agent.reports.words import caveats, headline, period_line, uptime_line


def _table(title: str, headers: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in headers:
        table.add_column(name, justify="right" if name in RIGHT else "left", overflow="fold")
    return table


def render(card: Scorecard, disruptions: list[Disruption] | None, console: Console) -> None:
    console.print(f"CX scorecard — {period_line(card)} — from {card.source}", markup=False, highlight=False)
    console.print(headline(card), markup=False, highlight=False)
    for note in caveats(card):
        console.print(f"  · {note}", markup=False, highlight=False)
    if not card.rows:
        return
    reasons = _table("Customer reasons", REASON_HEADERS)
    for reason in card.reasons:
        style = {True: "green", False: "red", None: ""}[reason.met]
        reasons.add_row(*reason_cells(reason), style=style or None)
    console.print(reasons)
    rows = _table("Journeys × regions (final runs; latency of on-time runs)", ROW_HEADERS)
    for row in card.rows:
        style = {True: "green", False: "red", None: ""}[row.now.met]
        rows.add_row(*row_cells(row), style=style or None)
    console.print(rows)
    if card.uptime:
        console.print(uptime_line(card), markup=False, highlight=False)
    if disruptions:
        render_disruptions(disruptions, console, now_ms=card.generated_ms)
