"""Exemplars: the trace of one run, pinned to the histogram bucket its duration fell into.

`/metrics` negotiated as OpenMetrics (qos_agent/ops/openmetrics.py) writes each bucket's exemplar
after its sample, so a Grafana latency panel links a slow bucket to the trace of a run in it
(issue 24). The text format (0.0.4) has no exemplars, and remote write sends none. A bucket keeps
only its latest exemplar: O(1) per observation, bounded memory per series. A plain tuple, not a
NamedTuple: it is made for every observed duration, and a NamedTuple costs ~7x more to build.
"""

from __future__ import annotations

from collections.abc import Mapping

# (trace id: the run's 32 hex digits, observed value in seconds, the run's start in unix ms)
Exemplar = tuple[str, float, int]


def trace_id_of(fields: Mapping[str, object]) -> str:
    """A journey or step point's trace id ('' for a point without one: no exemplar)."""
    trace_id = fields.get("trace_id")
    return trace_id if isinstance(trace_id, str) else ""
