"""A Prometheus histogram kept by hand: per-bucket counts, sum, count and each bucket's exemplar.

The journey series (qos_agent/sinks/series.py) keep one per family and label set; `/metrics` and
remote write read the same counts. Bucket bounds are written the way the text format writes them
(`floatToGoString`), one spelling on both paths.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from qos_agent.sinks.exemplars import Exemplar


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; the last is +Inf
    total: float = 0.0
    count: int = 0
    exemplars: list[Exemplar | None] = field(default_factory=list)  # per bucket, as counts; [] until one

    def observe(self, value: float, trace_id: str = "", time_ms: int = 0) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        bucket = bisect.bisect_left(self.buckets, value)  # le is inclusive
        self.counts[bucket] += 1
        self.total += value
        self.count += 1
        if trace_id:  # the bucket's exemplar: O(1), only its latest is kept
            if not self.exemplars:
                self.exemplars = [None] * (len(self.buckets) + 1)
            self.exemplars[bucket] = (trace_id, value, time_ms)

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs as the text format writes them, +Inf last."""
        les = _LE_TEXT.get(self.buckets)
        if les is None:
            les = _LE_TEXT[self.buckets] = [_go_float(le) for le in (*self.buckets, math.inf)]
        counts = self.counts or [0] * (len(self.buckets) + 1)
        return list(zip(les, itertools.accumulate(counts), strict=True))


_LE_TEXT: dict[tuple[float, ...], list[str]] = {}  # bucket bounds -> their `le` label values


def _go_float(value: float) -> str:
    """A bucket bound as the text format writes it (1.0, 0.005, +Inf): one spelling on both paths."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text
