"""Results -> points of the metrics schema (DESIGN.md). Every sink writes these, nothing else.

Tags are only the fixed, low-cardinality set (journey, step, region, agent, probe, kind and the
journey's own `tags:`); URLs, status codes, messages and ids are fields.
"""

from __future__ import annotations

from collections.abc import Iterable

from qos_agent.model import FieldValue, JourneyResult, Point, StepResult

# Field types never change from point to point (InfluxDB rejects a float where an int was):
# durations, phases and vitals are always floats, these counts always ints.
INT_METRICS = frozenset({"requests", "failed_requests", "console_errors"})


_TAGS: dict[tuple[object, ...], tuple[tuple[str, str], ...]] = {}  # a series' sorted tags, built once
_TAGS_MAX = 65_536  # distinct series remembered; beyond, the cache starts over (a reload, churn)


def _tags(key: tuple[object, ...], *pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """The sorted tag set of one series: the same few series repeat every run, so sort each once."""
    tags = _TAGS.get(key)
    if tags is None:
        if len(_TAGS) >= _TAGS_MAX:
            _TAGS.clear()
        tags = _TAGS[key] = tuple(sorted(pairs))
    return tags


def _metric(name: str, value: float) -> FieldValue:
    return int(value) if name in INT_METRICS else round(float(value), 4)


def journey_point(r: JourneyResult) -> Point:
    tags = _tags(("j", r.journey, r.region, r.agent, r.kind, r.tags),
                 ("journey", r.journey), ("region", r.region), ("agent", r.agent), ("kind", str(r.kind)), *r.tags)
    fields: list[tuple[str, FieldValue]] = [
        ("duration_ms", round(float(r.duration_ms), 3)),
        ("success", r.outcome.ok),
        ("outcome", str(r.outcome)),
        ("failed_step", r.failed_step),
        ("error", str(r.error) if r.error else ""),
        ("error_message", r.error_message),
        ("steps", len(r.steps)),
        ("attempt", r.attempt),
        ("flaky", r.flaky),
        ("final", r.final),
        ("run_id", r.run_id),
        ("loop_lag_ms", round(float(r.loop_lag_ms), 3)),
        ("lagged", r.lagged),
        ("trace_id", r.trace_id),
        ("span_id", r.span_id),
    ]
    if r.first_trace_id:  # a retry: the first attempt's run (a span link in OTLP)
        fields += [("first_trace_id", r.first_trace_id), ("first_span_id", r.first_span_id)]
    return Point("journey", tags, tuple(fields), r.start_ms)


def step_point(r: JourneyResult, s: StepResult) -> Point:
    tags = _tags(("s", r.journey, s.step, r.region, r.agent, s.probe, r.tags),
                 ("journey", r.journey), ("step", s.step), ("region", r.region), ("agent", r.agent),
                 ("probe", s.probe), *r.tags)
    fields: list[tuple[str, FieldValue]] = [
        ("duration_ms", round(float(s.duration_ms), 3)),
        ("success", s.outcome.ok),
        ("outcome", str(s.outcome)),
        ("error", str(s.error) if s.error else ""),
        ("error_message", s.error_message),
        ("bytes", s.bytes),
        ("attempt", r.attempt),
        ("run_id", r.run_id),
        ("loop_lag_ms", round(float(s.loop_lag_ms), 3)),
        ("lagged", s.lagged),
        ("trace_id", r.trace_id),
        ("span_id", s.span_id),
    ]
    if s.status_code is not None:
        fields.append(("status_code", s.status_code))
    if s.url:
        fields.append(("url", s.url))
    if s.body_excerpt:
        fields.append(("body_excerpt", s.body_excerpt))
    if s.request_spans:  # the span ids its requests carried (W3C parent ids), space-separated
        fields.append(("request_spans", " ".join(s.request_spans)))
    fields += [(k, v if v.__class__ is float else round(float(v), 3)) for k, v in s.phases.items()]  # probes round
    fields.extend((k, _metric(k, v)) for k, v in s.metrics.items())
    fields.extend(s.artifacts.items())
    fields.extend(s.text.items())
    return Point("step", tags, tuple(fields), s.start_ms or r.start_ms)


def result_points(r: JourneyResult) -> list[Point]:
    """The journey's point first, then one per step (skipped steps included)."""
    return [journey_point(r), *(step_point(r, s) for s in r.steps)]


def points_of(results: Iterable[JourneyResult]) -> list[Point]:
    return [p for r in results for p in result_points(r)]
