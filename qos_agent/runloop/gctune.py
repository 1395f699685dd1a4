"""The garbage collector tuned for an agent with many runs in flight.

CPython collects its youngest generation whenever 700 more container objects are alive than at the
last collection. A run in flight holds a few hundred (its session, connector, futures, trace, result),
so with dozens of runs in flight every young collection finds them all alive, promotes them, and the
older generations fill with objects that die a millisecond later: full collections then walk every
object the process holds (imports included) several times a minute. bench_throughput measured this
at a sixth of the agent's CPU per step. So, once, before the first run: the start-up objects are
frozen out of every collection (`gc.freeze`, they live as long as the process), and a young
collection waits for YOUNG_THRESHOLD objects, more than any realistic set of runs holds at once.
Garbage cycles are still collected, a little later; the memory bench shows the resident size.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
OLDER_THRESHOLDS = (20, 20)


def tune_gc() -> None:
    """Freeze what exists now and raise the young threshold (idempotent; safe to call again)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
