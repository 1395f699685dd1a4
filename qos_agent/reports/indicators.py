"""The indicators leaders are accountable to, computed once for a row, a journey or a customer reason.

Every figure is `None` where there is no data to say it (no runs, no objective, no interval known),
never 0 or 100 %: an empty week must not read as a perfect one. Ratios are 0..1.

- success ratio: final runs that passed or were degraded, over all final runs;
- error budget left: 1 - (1 - success) / (1 - objective), clamped to 0..1 (0: spent, or overspent);
- p50/p95/p99: of on-time final runs (lagged ones hold the agent's own delay), failed runs included
  (a failure's wait is felt too);
- disrupted minutes: the minutes disruptions were open; customer-minutes: those × the journey's
  `weight` (1 without one); hidden minutes: those uptime monitoring stayed green through, and their
  share of the customer-minutes (None when nothing was disrupted);
- flaky ratio: final runs that passed only on a retry;
- coverage: final runs over the runs planned (agents × period / interval), at most 1; the one
  figure where 0 is the honest answer to "nothing was measured".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from qos_agent.reports.figures import Cell, Quantiles

KEYS = ("runs", "success_ratio", "slo_success", "error_budget_left", "p50_ms", "p95_ms", "p99_ms",
        "slo_latency_ms", "disrupted_minutes", "customer_minutes", "hidden_minutes", "hidden_share", "flaky_ratio",
        "coverage")


@dataclass(frozen=True, slots=True)
class Indicators:
    runs: int = 0
    success_ratio: float | None = None
    slo_success: float | None = None
    error_budget_left: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    slo_latency_ms: float | None = None
    disrupted_minutes: float | None = None
    customer_minutes: float | None = None
    hidden_minutes: float | None = None
    hidden_share: float | None = None  # of the customer-minutes, the share uptime monitoring stayed green through
    flaky_ratio: float | None = None
    coverage: float | None = None

    @property
    def met(self) -> bool | None:
        """The objective held: success at or above it and p95 at or under the latency objective."""
        if self.success_ratio is None or self.slo_success is None:
            return None
        latency_ok = self.slo_latency_ms is None or self.p95_ms is None or self.p95_ms <= self.slo_latency_ms
        return self.success_ratio >= self.slo_success and latency_ok

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


def error_budget_left(success: float | None, objective: float | None) -> float | None:
    if success is None or objective is None:
        return None
    budget = 1.0 - objective
    if budget <= 0:
        return 1.0 if success >= 1.0 else 0.0
    return round(min(1.0, max(0.0, 1.0 - (1.0 - success) / budget)), 6)


def _round(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


def parse_weight(text: str) -> float | None:
    try:
        weight = float(text)
    except ValueError:
        return None
    return weight if weight > 0 else None


@dataclass(frozen=True, slots=True)
class Objective:
    success: float | None = None
    latency_ms: float | None = None
    interval_s: float | None = None


def planned_runs(objective: Objective, period_s: float, agents: int) -> float:
    """Runs `agents` agents would make in the period at the journey's interval (0: unknown)."""
    return agents * period_s / objective.interval_s if objective.interval_s else 0.0


def compute(cells: Sequence[Cell], latency: Quantiles, objective: Objective, weight: float | None,
            expected: float) -> Indicators:
    """Indicators of some cells (one journey × region, or every region of a journey) over one period;
    `expected`: the runs planned (0 when the interval is unknown: coverage None)."""
    runs = sum(c.runs for c in cells)
    disrupted_s = sum(c.disrupted_s for c in cells)
    success = ratio(sum(c.successes for c in cells), runs)
    minutes = disrupted_s / 60 if runs or disrupted_s else None
    return Indicators(
        runs=runs, success_ratio=success, slo_success=objective.success,
        error_budget_left=error_budget_left(success, objective.success),
        p50_ms=_round(latency.p50_ms), p95_ms=_round(latency.p95_ms), p99_ms=_round(latency.p99_ms),
        slo_latency_ms=_round(objective.latency_ms),
        disrupted_minutes=_round(minutes),
        customer_minutes=_round(None if minutes is None else minutes * (weight or 1.0)),
        hidden_minutes=_round(None if minutes is None else sum(c.hidden_s for c in cells) / 60),
        hidden_share=ratio(sum(c.hidden_s for c in cells), disrupted_s),
        flaky_ratio=ratio(sum(c.flaky for c in cells), runs),
        coverage=round(min(1.0, runs / expected), 6) if expected else None,
    )


def pooled(cells: Sequence[Cell], journeys: Sequence[Indicators], expected_runs: float) -> Indicators:
    """Indicators of several journeys together (a customer reason): counts pooled over their cells,
    minutes summed over the journeys (each weighted by its own weight); objectives and quantiles
    are each journey's own (they differ), so they stay None here."""
    runs = sum(c.runs for c in cells)

    def total(name: str) -> float | None:
        values = [getattr(j, name) for j in journeys if getattr(j, name) is not None]
        return round(sum(values), 3) if values else None

    hidden_customer = sum((j.customer_minutes or 0.0) * (j.hidden_share or 0.0) for j in journeys)
    return Indicators(runs=runs, success_ratio=ratio(sum(c.successes for c in cells), runs),
                      disrupted_minutes=total("disrupted_minutes"), customer_minutes=total("customer_minutes"),
                      hidden_minutes=total("hidden_minutes"),
                      hidden_share=ratio(hidden_customer, total("customer_minutes") or 0.0),
                      flaky_ratio=ratio(sum(c.flaky for c in cells), runs),
                      coverage=round(min(1.0, runs / expected_runs), 6) if expected_runs else None)
