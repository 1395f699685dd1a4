"""`qos-agent report --format markdown`: the scorecard as a post for chat or a ticket.

GitHub-flavoured tables (they render in GitHub, GitLab, Jira's markdown, Mattermost, Slack's canvas):
the summary in words, the customer reasons, then every journey × region.
"""

from __future__ import annotations

from qos_agent.reports.columns import REASON_HEADERS, ROW_HEADERS, journey_line, reason_cells, row_cells
from qos_agent.reports.scorecard import Scorecard
from qos_agent.reports.words import caveats, headline, period_line, uptime_line


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render(card: Scorecard) -> str:
    lines = [f"## CX scorecard — {period_line(card)}", "", headline(card), ""]
    notes = caveats(card)
    if notes:
        lines += [f"- {_cell(n)}" for n in notes] + [""]
    if card.rows:
        lines += ["### Customer reasons", "", *_table(REASON_HEADERS, [reason_cells(r) for r in card.reasons]), ""]
        lines += ["### Journeys", "", *[f"- {_cell(journey_line(j))}" for j in card.journeys], ""]
        lines += ["### Journeys × regions", "", *_table(ROW_HEADERS, [row_cells(r) for r in card.rows]), ""]
        if card.uptime:
            lines += [uptime_line(card), ""]
    lines.append(f"_From {card.source}; success counts passed and degraded final runs; latency is of on-time runs; "
                 "— means no data._")
    return "\n".join(lines) + "\n"
