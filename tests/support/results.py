"""Builders of StepResult / JourneyResult for tests: realistic results in one line each.

`journey(...)` derives the run's outcome, failed step and error from its steps with the runner's
own rules (`journey_outcome`), unless they are given.
"""

from __future__ import annotations

import itertools
from typing import Any

from qos_agent.model import ErrorClass, FieldValue, JourneyKind, JourneyResult, Outcome, Point, StepResult
from qos_agent.runloop.runner import journey_outcome

T0_MS = 1_700_000_000_000  # a fixed run start (2023-11-14T22:13:20Z)
_ids = itertools.count(1)


def passed(name: str, duration_ms: float = 100.0, probe: str = "http", **kw: Any) -> StepResult:
    kw.setdefault("status_code", 200 if probe == "http" else None)
    return StepResult(step=name, probe=probe, outcome=Outcome.PASSED, duration_ms=duration_ms, **kw)


def degraded(name: str, duration_ms: float = 1500.0, probe: str = "http", **kw: Any) -> StepResult:
    return StepResult(step=name, probe=probe, outcome=Outcome.DEGRADED, duration_ms=duration_ms, **kw)


def failed(name: str, error: ErrorClass = ErrorClass.STATUS, message: str = "HTTP 503",
           duration_ms: float = 50.0, probe: str = "http", **kw: Any) -> StepResult:
    return StepResult.failure(name, probe, error, message, duration_ms=duration_ms, **kw)


def skipped(name: str, probe: str = "http") -> StepResult:
    return StepResult(step=name, probe=probe, outcome=Outcome.SKIPPED)


def journey(name: str = "checkout", steps: list[StepResult] | None = None, *, region: str = "eu-west",
            agent: str = "agent-1", start_ms: int = T0_MS, duration_ms: float | None = None,
            attempt: int = 1, final: bool = True, outcome: Outcome | None = None,
            kind: JourneyKind = JourneyKind.JOURNEY, run_id: str | None = None,
            tags: tuple[tuple[str, str], ...] = (), **kw: Any) -> JourneyResult:
    steps = [passed("login")] if steps is None else steps
    total_ms = sum(s.duration_ms for s in steps) if duration_ms is None else duration_ms
    ruled, first_failed = journey_outcome(steps, total_ms)
    outcome = ruled if outcome is None else outcome
    if first_failed is not None:
        kw.setdefault("failed_step", first_failed.step)
        kw.setdefault("error", first_failed.error)
        kw.setdefault("error_message", first_failed.error_message)
    return JourneyResult(
        journey=name, kind=kind, region=region, agent=agent,
        run_id=run_id if run_id is not None else f"run-{next(_ids)}", start_ms=start_ms,
        outcome=outcome,
        duration_ms=total_ms,
        steps=steps, attempt=attempt, final=final, tags=tags, **kw,
    )


def disruption(state: str, time_ms: int, *, journey: str = "checkout", region: str = "eu-west",
               agent: str = "agent-1", reason: str = "success 80.0% < 99.5%", success_ratio: float = 0.8,
               latency_p95_ms: float = 300.0, uptime_ok: bool = True) -> Point:
    """A `disruption` point as the evaluator writes it (metrics schema of DESIGN.md)."""
    tags = (("agent", agent), ("journey", journey), ("region", region), ("state", state))
    fields: tuple[tuple[str, FieldValue], ...] = (
        ("reason", reason), ("success_ratio", success_ratio), ("latency_p95_ms", latency_p95_ms),
        ("uptime_ok", uptime_ok))
    return Point("disruption", tags, fields, time_ms)
