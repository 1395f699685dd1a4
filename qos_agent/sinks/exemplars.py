"""Exemplars: the trace of one run, pinned to the histogram bucket its duration fell into.

`/metrics` negotiated as OpenMetrics (qos_agent/ops/openmetrics.py) writes each bucket's exemplar
after its sample, so a Grafana latency panel links a slow bucket to the trace of a run in it
(issue 24). The text format (0.0.4) has no exemplars, and remote write sends none. A bucket keeps
only its latest exemplar: O(1) per observation, bounded memory per series.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Exemplar(NamedTuple):
    """The latest observation of a bucket that carried a trace id."""

    trace_id: str  # 32 hex digits: the run's W3C trace id
    value: float  # the observed duration, seconds
    time_s: float  # the run's start, unix seconds


def exemplar_of(fields: Mapping[str, object], value: float, time_ms: int) -> Exemplar | None:
    """A journey or step point's trace id as the exemplar of its duration (None for a point without one)."""
    trace_id = fields.get("trace_id")
    return Exemplar(trace_id, value, time_ms / 1000) if isinstance(trace_id, str) and trace_id else None
