"""The scorecard's figures as table cells, shared by the terminal table, markdown and HTML.

One place decides how a figure reads: `—` where there is no data (never 0 % or 100 %), success
beside its objective, p95 beside the latency objective, customer-minutes with the hidden share,
and the trend as the change since the previous period.
"""

from __future__ import annotations

from qos_agent.reports.indicators import Indicators
from qos_agent.reports.scorecard import JourneyCard, ReasonCard, Row
from qos_agent.reports.words import minutes, percent

NONE = "—"
ROW_HEADERS = ("journey", "region", "owner", "runs", "success", "objective", "budget left", "p50 ms", "p95 ms",
               "p99 ms", "p95 objective", "customer-min", "hidden", "flaky", "coverage", "Δ success",
               "Δ p95 ms", "Δ customer-min")
COMPACT_HEADERS = ("journey", "region", "runs", "success / objective", "budget left", "p95 / objective",
                   "customer-min", "hidden", "flaky", "coverage", "since the previous period")
REASON_HEADERS = ("customer reason", "owners", "journeys", "objective", "runs", "success", "customer-min",
                  "hidden", "worst", "Δ success", "Δ customer-min")
RIGHT = {"runs", "success", "objective", "budget left", "p50 ms", "p95 ms", "p99 ms", "p95 objective",
         "customer-min", "hidden", "flaky", "coverage", "Δ success", "Δ p95 ms", "Δ customer-min",
         "success / objective", "p95 / objective"}


def ms(value: float | None) -> str:
    return NONE if value is None else f"{value:.0f}"


def mins(value: float | None) -> str:
    return NONE if value is None else minutes(value)


def delta(now: float | None, before: float | None, unit: str = "", scale: float = 1.0, places: int = 0) -> str:
    if now is None or before is None:
        return NONE
    change = (now - before) * scale
    if round(change, places) == 0:
        return f"±0{unit}"
    return f"{change:+.{places}f}{unit}"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: NONE}[met]


def trend_cells(now: Indicators, trend: Indicators | None, with_p95: bool = True) -> list[str]:
    if trend is None:
        return [NONE] * (3 if with_p95 else 2)
    cells = [delta(now.success_ratio, trend.success_ratio, " pp", 100, 2)]
    if with_p95:
        cells.append(delta(now.p95_ms, trend.p95_ms, ""))
    cells.append(delta(now.customer_minutes, trend.customer_minutes, "", 1, 1))
    return cells


def row_cells(row: Row) -> list[str]:
    n = row.now
    return [row.journey, row.region, row.meta.owner or NONE, str(n.runs), percent(n.success_ratio),
            percent(n.slo_success, 1), percent(n.error_budget_left, 0), ms(n.p50_ms), ms(n.p95_ms), ms(n.p99_ms),
            ms(n.slo_latency_ms), mins(n.customer_minutes), percent(n.hidden_share, 0), percent(n.flaky_ratio, 1),
            percent(n.coverage, 0), *trend_cells(n, row.trend)]


def compact_cells(row: Row) -> list[str]:
    """A row for a page: success and p95 beside their objectives, the trend in one cell."""
    n = row.now
    trend = NONE if row.trend is None else ", ".join(
        f"{name} {value}" for name, value in zip(("success", "p95", "customer-min"), trend_cells(n, row.trend),
                                                   strict=True) if value != NONE)
    return [row.journey, row.region, str(n.runs), f"{percent(n.success_ratio)} / {percent(n.slo_success, 1)}",
            percent(n.error_budget_left, 0), f"{ms(n.p95_ms)} / {ms(n.slo_latency_ms)} ms",
            mins(n.customer_minutes), percent(n.hidden_share, 0), percent(n.flaky_ratio, 1),
            percent(n.coverage, 0), trend or NONE]


def journey_line(card: JourneyCard) -> str:
    n = card.now
    if not n.runs:
        return f"{card.journey}: no runs in this period"
    worst = f"; worst region {card.worst_region}" if card.worst_region and len(card.regions) > 1 else ""
    return (f"{card.journey}: {verdict(n.met)} — success {percent(n.success_ratio)} (objective "
            f"{percent(n.slo_success, 1)}), p95 {ms(n.p95_ms)} ms (objective {ms(n.slo_latency_ms)} ms), "
            f"{mins(n.customer_minutes)} customer-minutes{worst}")


def reason_cells(card: ReasonCard, journeys_sep: str = ", ") -> list[str]:
    """A customer reason's cells; a terminal lists its journeys one a line (`journeys_sep="\\n"`)."""
    n = card.now
    objective = NONE if card.met is None else (
        "met" if card.met else f"MISSED ({card.missed} of {card.measured} journeys)")
    hurt = card.met is False or bool(n.customer_minutes)
    worst = f"{card.worst[0]} in {card.worst[1]}" if card.worst and hurt else NONE
    return [card.customer_reason or "(no customer reason)", ", ".join(card.owners) or NONE,
            journeys_sep.join(card.journeys), objective, str(n.runs), percent(n.success_ratio),
            mins(n.customer_minutes), percent(n.hidden_share, 0), worst, *trend_cells(n, card.trend, with_p95=False)]


def reason_line(card: ReasonCard) -> str:
    """A customer reason in words, for a terminal too narrow for its table: the same figures as its cells."""
    (reason, owners, journeys, objective, runs, success, minutes_, hidden, worst, d_success, d_minutes) = \
        reason_cells(card)
    if not card.now.runs:
        return f"{reason}: no runs in this period (journeys {journeys}; owners {owners})"
    lost = f"{minutes_} customer-minutes" + (f" ({hidden} hidden from uptime)" if hidden != NONE else "")
    parts = [f"success {success} in {runs} runs", lost]
    if worst != NONE:
        parts.append(f"worst {worst}")
    if card.trend is not None:
        parts.append(f"since the previous period success {d_success}, customer-minutes {d_minutes}")
    return f"{reason}: {objective} — {'; '.join(parts)}; journeys {journeys}; owners {owners}"
