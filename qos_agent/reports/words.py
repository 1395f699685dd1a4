"""The scorecard in a few sentences, for people who read no tables: the same words in every output.

"2 of 7 customer reasons missed their objective; checkout in ap-south lost 42 customer-minutes,
38 of them hidden from uptime." Then what makes a figure less than it seems: a period with no runs,
journeys the file no longer has (renamed or removed?), regions and journeys that started reporting
during the period (no trend to compare with), runs the agent itself slowed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from qos_agent.reports.scorecard import Scorecard


def when(ms: int, *, seconds: bool = False) -> str:
    """A moment for people, in UTC and saying so."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) + " UTC"


def minutes(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}".rstrip("0").rstrip(".") or "0"


def percent(value: float | None, places: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{places}f} %"


def period_line(card: Scorecard) -> str:
    return f"{card.window.label}: {when(card.window.from_ms)} to {when(card.window.to_ms)}"


def headline(card: Scorecard) -> str:
    """The first sentence: how many customer reasons (or journeys) missed, and who lost the most."""
    if not any(r.now.runs for r in card.rows):
        return (f"No journey runs were recorded in this period ({period_line(card)}) by {card.source}: "
                "nothing can be said about it, good or bad.")
    named = [r for r in card.reasons if r.customer_reason is not None and r.met is not None]
    if named:
        missed = sum(1 for r in named if r.met is False)
        first = f"{missed} of {len(named)} customer reason{'s' if len(named) != 1 else ''} missed their objective"
    else:
        judged = [j for j in card.journeys if j.now.met is not None]
        missed = sum(1 for j in judged if j.now.met is False)
        first = (f"{missed} of {len(judged)} journey{'s' if len(judged) != 1 else ''} missed their objective"
                 if judged else "no journey has an objective to judge it by")
    hurt = sorted((r for r in card.rows if r.now.customer_minutes), key=lambda r: -(r.now.customer_minutes or 0.0))
    if not hurt:
        return f"{first[0].upper()}{first[1:]}; no customer-minutes were lost to disruptions."
    worst = hurt[0]
    lost = worst.now.customer_minutes or 0.0
    hidden = (worst.now.hidden_minutes or 0.0) * (lost / (worst.now.disrupted_minutes or lost))
    tail = f", {minutes(hidden)} of them hidden from uptime" if hidden >= 0.05 else ""
    who = f"{worst.journey} in {worst.region}"
    return f"{first[0].upper()}{first[1:]}; {who} lost {minutes(lost)} customer-minutes{tail}."


def uptime_line(card: Scorecard) -> str:
    """The yardstick: how the plain uptime checks did (they are not customer reasons, so not rows)."""
    if not card.uptime:
        return ""
    parts = [f"{j} in {r} {percent(ok)} of {n} runs" for j, r, n, ok in card.uptime]
    return "Uptime checks (the yardstick the hidden minutes are measured against): " + "; ".join(parts) + "."


def caveats(card: Scorecard) -> list[str]:
    """What the reader should know before trusting a figure."""
    notes: list[str] = []
    for j in card.journeys:
        if j.meta.configured is False:
            last = max((r.last_run_ms or 0 for r in card.rows if r.journey == j.journey), default=0)
            seen = f": its last run was {when(last)}" if last else ""
            notes.append(f"{j.journey} is not in the journeys file any more{seen} (renamed or removed?); "
                         "its objective and coverage are unknown unless the source knows them.")
        elif j.meta.configured and not j.now.runs:
            notes.append(f"{j.journey} is in the journeys file but has no runs in this period.")
    notes += _late_starters(card)
    lagged = sum(r.lagged_runs for r in card.rows)
    if lagged:
        notes.append(f"{lagged} run{'s were' if lagged != 1 else ' was'} taken while the agent itself lagged: "
                     "counted for success, left out of latency.")
    if card.latency_method == "histogram":
        notes.append("Latency quantiles are Prometheus' estimates inside histogram buckets.")
    return notes


def _late_starters(card: Scorecard) -> list[str]:
    """Journeys and regions that began reporting during the period: less coverage, nothing to trend."""
    measured = [r for r in card.rows if r.now.runs and r.first_run_ms is not None]
    if not measured:
        return []
    earliest = min(r.first_run_ms or 0 for r in measured)
    notes: list[str] = []
    if all(r.trend is None for r in measured):
        if earliest > card.window.from_ms:
            notes.append(f"The source holds nothing before {when(earliest)}: there is no previous period to "
                         "compare with, and coverage counts from the start of the period.")
        since = earliest + max(600_000, (card.window.to_ms - card.window.from_ms) // 20)
        late = [r for r in measured if (r.first_run_ms or 0) > since]
    else:
        late = [r for r in measured if r.trend is None and (r.first_run_ms or 0) > card.window.from_ms]
    trended = {j.journey for j in card.journeys if j.trend is not None}
    first_of = {j: min(r.first_run_ms or 0 for r in measured if r.journey == j) for j in {r.journey for r in measured}}
    for r in late:
        what = "region" if r.journey in trended or (r.first_run_ms or 0) > first_of[r.journey] else "journey"
        notes.append(f"{r.journey} in {r.region} started reporting on {when(r.first_run_ms or 0)} (a new {what}): "
                     f"coverage {percent(r.now.coverage, 0)}, no previous period to compare with.")
    return notes
