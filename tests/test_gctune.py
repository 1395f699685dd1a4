"""The collector is tuned once the agent's loop runs: start-up objects frozen, young threshold raised,
and garbage cycles made by runs are still freed by the collector on its own."""

from __future__ import annotations

import gc
import weakref

from qos_agent.runloop import gctune, loops


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def _tuned_and_freed() -> tuple[tuple[int, int, int], int, bool]:
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    first = _Cycle()
    alive = weakref.ref(first)
    del first  # unreachable now, but only a collection frees a cycle
    keep = [[i] for i in range(gctune.YOUNG_THRESHOLD * 3)]  # enough new objects to trigger young collections
    del keep
    return thresholds, frozen, alive() is None


def test_run_tunes_the_collector_and_cycles_are_still_freed() -> None:
    before = gc.get_threshold()
    try:
        thresholds, frozen, freed = loops.run(_tuned_and_freed(), "asyncio")
        assert thresholds == (gctune.YOUNG_THRESHOLD, *gctune.OLDER_THRESHOLDS)
        assert frozen > 1000  # the start-up objects (imports) are out of every collection
        assert freed  # without any explicit gc.collect()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
