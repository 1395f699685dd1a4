"""The CX scorecard: rows per journey × region, rolled up per journey and per customer reason, with
the same figures for the previous period beside them (the trend).

Built from two `Figures` (this period, the one before) of any source and what journeys.yaml says
(objectives, intervals, owner, customer reason, weight; the file wins over the data's tags, which
fill in for journeys the file no longer has). `to_json` is the documented shape (docs/scorecard.md).
Journeys of `kind: uptime` are the yardstick, not a customer reason: they are not rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qos_agent.reports.figures import Cell, Figures, Quantiles
from qos_agent.reports.indicators import Indicators, Objective, compute, parse_weight, planned_runs, pooled, ratio
from qos_agent.reports.journeyfile import JourneyInfo
from qos_agent.reports.period import Window, iso


@dataclass(frozen=True, slots=True)
class Meta:
    owner: str | None = None
    customer_reason: str | None = None
    weight: float | None = None
    configured: bool | None = None  # in journeys.yaml (None: no file was read)


@dataclass(frozen=True, slots=True)
class Row:
    journey: str
    region: str
    meta: Meta
    now: Indicators
    trend: Indicators | None  # None: no runs of it in the previous period
    first_run_ms: int | None = None
    last_run_ms: int | None = None
    lagged_runs: int = 0
    degraded_runs: int = 0
    agents: int = 0


@dataclass(frozen=True, slots=True)
class JourneyCard:
    journey: str
    meta: Meta
    regions: tuple[str, ...]
    now: Indicators
    trend: Indicators | None
    worst_region: str | None


@dataclass(frozen=True, slots=True)
class ReasonCard:
    customer_reason: str | None
    owners: tuple[str, ...]
    journeys: tuple[str, ...]
    now: Indicators
    trend: Indicators | None
    missed: int  # journeys that missed their objective
    measured: int  # journeys with an objective and runs
    worst: tuple[str, str] | None  # (journey, region) that lost the most customer-minutes

    @property
    def met(self) -> bool | None:
        return None if not self.measured else self.missed == 0


@dataclass(frozen=True, slots=True)
class Scorecard:
    window: Window
    previous: Window
    source: str
    latency_method: str
    generated_ms: int
    read_file: bool
    rows: tuple[Row, ...] = ()
    journeys: tuple[JourneyCard, ...] = ()
    reasons: tuple[ReasonCard, ...] = ()
    uptime: tuple[tuple[str, str, int, float | None], ...] = ()  # (journey, region, runs, success) of the yardstick

    def to_json(self) -> dict[str, Any]:
        def ind(now: Indicators, trend: Indicators | None) -> dict[str, Any]:
            return {**now.as_dict(), "met_objective": now.met, "trend": None if trend is None else
                    {**trend.as_dict(), "met_objective": trend.met}}

        def meta(m: Meta) -> dict[str, Any]:
            return {"owner": m.owner, "customer_reason": m.customer_reason, "weight": m.weight}

        return {
            "period": {"from": iso(self.window.from_ms), "to": iso(self.window.to_ms), "label": self.window.label},
            "previous_period": {"from": iso(self.previous.from_ms), "to": iso(self.previous.to_ms)},
            "source": self.source, "latency_quantiles": self.latency_method, "generated": iso(self.generated_ms),
            "rows": [{"journey": r.journey, "region": r.region, **meta(r.meta), **ind(r.now, r.trend),
                      "configured": r.meta.configured, "agents": r.agents, "lagged_runs": r.lagged_runs,
                      "degraded_runs": r.degraded_runs,
                      "first_run": None if r.first_run_ms is None else iso(r.first_run_ms),
                      "last_run": None if r.last_run_ms is None else iso(r.last_run_ms)} for r in self.rows],
            "journeys": [{"journey": j.journey, **meta(j.meta), "regions": list(j.regions), **ind(j.now, j.trend),
                          "worst_region": j.worst_region, "configured": j.meta.configured} for j in self.journeys],
            "customer_reasons": [{"customer_reason": c.customer_reason, "owners": list(c.owners),
                                  "journeys": list(c.journeys), **ind(c.now, c.trend), "met_objective": c.met,
                                  "journeys_missed": c.missed, "journeys_measured": c.measured,
                                  "worst": None if c.worst is None else {"journey": c.worst[0], "region": c.worst[1]}}
                                 for c in self.reasons],
            "uptime": [{"journey": j, "region": r, "runs": n, "success_ratio": ok} for j, r, n, ok in self.uptime],
        }


def _meta(info: JourneyInfo | None, cells: list[Cell], read_file: bool) -> Meta:
    """The file's owner/reason/weight, else the newest of the data's tags."""
    newest = sorted(cells, key=lambda c: c.last_ms or 0, reverse=True)

    def pick(own: str, attr: str) -> str | None:
        return own or next((getattr(c, attr) for c in newest if getattr(c, attr)), None)

    weight = pick(info.weight if info else "", "weight")
    return Meta(owner=pick(info.owner if info else "", "owner"),
                customer_reason=pick(info.customer_reason if info else "", "customer_reason"),
                weight=parse_weight(weight) if weight else None, configured=(info is not None) if read_file else None)


def _objective(info: JourneyInfo | None, cells: list[Cell]) -> Objective:
    if info is not None:
        return Objective(info.slo_success, info.slo_latency_ms, info.interval_s)
    known = next((c for c in cells if c.slo_success is not None), None)  # Prometheus' objective gauges
    return Objective(known.slo_success, known.slo_latency_ms) if known else Objective()


def _badness(row: Row) -> tuple[float, float, float]:
    n = row.now
    return (n.success_ratio if n.success_ratio is not None else 2.0, -(n.customer_minutes or 0.0), -(n.p95_ms or 0.0))


def build(current: Figures, previous: Figures, journeys: dict[str, JourneyInfo], *, source: str,
          read_file: bool, generated_ms: int) -> Scorecard:
    names = sorted({j for (j, _), c in [*current.cells.items(), *previous.cells.items()] if c.kind != "uptime"}
                   | {n for n, info in journeys.items() if info.kind != "uptime"})
    rows: list[Row] = []
    cards: list[JourneyCard] = []
    by_reason: dict[str | None, list[tuple[JourneyCard, list[Cell], float]]] = {}
    for name in names:
        info = journeys.get(name)
        now_cells = [c for (j, _), c in sorted(current.cells.items()) if j == name]
        before_cells = [c for (j, _), c in sorted(previous.cells.items()) if j == name]
        meta = _meta(info, now_cells + before_cells, read_file)
        objective = _objective(info, now_cells + before_cells)
        regions = sorted({c.region for c in now_cells + before_cells})
        mine: list[Row] = []
        planned_now = planned_before = 0.0
        for region in regions:
            now_cell = current.cells.get((name, region)) or Cell(name, region)
            before_cell = previous.cells.get((name, region))
            agents = len(now_cell.agents) or len(before_cell.agents if before_cell else ()) or 1
            expected = planned_runs(objective, current.window.seconds, agents)
            planned_now += expected
            trend = None
            if before_cell is not None and before_cell.runs:
                before_expected = planned_runs(objective, previous.window.seconds, len(before_cell.agents) or 1)
                planned_before += before_expected
                trend = compute([before_cell], before_cell.latency, objective, meta.weight, before_expected)
            mine.append(Row(name, region, meta, compute([now_cell], now_cell.latency, objective, meta.weight, expected),
                            trend, now_cell.first_ms, now_cell.last_ms, now_cell.lagged, now_cell.degraded,
                            len(now_cell.agents)))
        now = compute(now_cells, current.journey_latency.get(name, Quantiles()), objective, meta.weight, planned_now)
        trend = (compute(before_cells, previous.journey_latency.get(name, Quantiles()), objective, meta.weight,
                         planned_before) if sum(c.runs for c in before_cells) else None)
        measured = [r for r in mine if r.now.runs]
        worst = min(measured, key=_badness).region if measured else None
        card = JourneyCard(name, meta, tuple(regions), now, trend, worst)
        rows += mine
        cards.append(card)
        by_reason.setdefault(meta.customer_reason, []).append((card, now_cells + before_cells, planned_now))
    reasons = [_reason(reason, parts, rows, current, previous) for reason, parts in by_reason.items()]
    reasons.sort(key=lambda r: (r.met is not False, -(r.now.customer_minutes or 0.0), r.customer_reason is None,
                                r.customer_reason or ""))
    uptime = tuple((c.journey, c.region, c.runs, ratio(c.successes, c.runs))
                   for _, c in sorted(current.cells.items()) if c.kind == "uptime" and c.runs)
    return Scorecard(current.window, previous.window, source, current.latency_method, generated_ms, read_file,
                     tuple(rows), tuple(cards), tuple(reasons), uptime)


def _reason(reason: str | None, parts: list[tuple[JourneyCard, list[Cell], float]], rows: list[Row],
            current: Figures, previous: Figures) -> ReasonCard:
    names = [card.journey for card, _, _ in parts]
    now_cells = [c for (j, _), c in current.cells.items() if j in names]
    before_cells = [c for (j, _), c in previous.cells.items() if j in names]
    now = pooled(now_cells, [card.now for card, _, _ in parts], sum(p for _, _, p in parts))
    befores = [card.trend for card, _, _ in parts if card.trend is not None]
    trend = pooled(before_cells, befores, 0.0) if befores else None
    verdicts = [card.now.met for card, _, _ in parts if card.now.met is not None]
    mine = [r for r in rows if r.journey in names and r.now.runs]
    hurt = [r for r in mine if r.now.customer_minutes]
    worst = max(hurt, key=lambda r: r.now.customer_minutes or 0.0) if hurt else (
        min(mine, key=_badness) if mine else None)
    owners = tuple(sorted({card.meta.owner for card, _, _ in parts if card.meta.owner}))
    return ReasonCard(reason, owners, tuple(names), now, trend, verdicts.count(False), len(verdicts),
                      (worst.journey, worst.region) if worst else None)
