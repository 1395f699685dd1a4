"""How late the event loop is, measured continuously and cheaply, so samples can say when the agent lagged.

A timer callback re-arms itself every PERIOD_S (fixed delay, `call_at`); each time it fires it
records how late it came against its plan. A late timer means every callback due meanwhile — the
end of a request, a TLS read — was late too, so a latency measured across that moment includes the
agent's own delay. One callback per 10 ms costs about 0.1 % of a core.

Ticks go into a ring buffer; a step takes a `mark()` when it starts and asks `worst_since(mark)`
when it ends: the worst lateness observed while it was in flight, including a lateness still in
progress (the next tick is overdue right now). Lateness is read from time.monotonic(), the clock
both loops' timers follow (uvloop's `loop.time()` is a per-iteration cached millisecond value, which
would not see a lateness still in progress). `overloaded()` tells the scheduler the loop *stays*
late: at least SUSTAINED_TICKS late ticks within the last WINDOW_S, so one GC pause sheds nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

PERIOD_S = 0.010
RING = 8192  # 8192 ticks × ≥10 ms ≥ 80 s of history; an older mark takes the whole ring
WINDOW_S = 1.0
SUSTAINED_TICKS = 2


class LoopLag:
    """A loop-lateness monitor for the running event loop; `start()` inside it, `stop()` when done."""

    def __init__(self, threshold_ms: float = 50.0, period_s: float = PERIOD_S) -> None:
        self.threshold_ms = threshold_ms
        self.period_s = period_s
        self._lag = [0.0] * RING  # ms late, per tick
        self._ticks = 0  # ticks recorded so far; the next goes to _ticks % RING
        self._planned = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.worst_ms = 0.0  # the worst lateness ever seen (self-metrics)
        self.last_ms = 0.0  # the latest tick's lateness
        self._late: deque[tuple[float, float]] = deque(maxlen=64)  # (when, ms) of ticks over the threshold

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Begin ticking on the running loop (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._handle is not None and self._loop is loop:
            return
        self.stop()
        self._loop = loop
        self._planned = time.monotonic() + self.period_s
        self._handle = loop.call_at(loop.time() + self.period_s, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = time.monotonic()
        lag_ms = max(0.0, (now - self._planned) * 1000.0)
        self._lag[self._ticks % RING] = lag_ms
        self._ticks += 1
        self.last_ms = lag_ms
        if lag_ms > self.worst_ms:
            self.worst_ms = lag_ms
        if lag_ms > self.threshold_ms:
            self._late.append((now, lag_ms))
        self._planned = now + self.period_s
        self._handle = loop.call_at(loop.time() + self.period_s, self._tick)

    def current_ms(self) -> float:
        """How late the loop is right now: how overdue the next tick already is (0 when not running)."""
        if self._handle is None:
            return 0.0
        return max(0.0, (time.monotonic() - self._planned) * 1000.0)

    def mark(self) -> int:
        """A position to ask `worst_since` about later (e.g. when a step starts). A tick already
        overdue now measures a delay that ended before this moment: it is left out."""
        return self._ticks + (1 if self.current_ms() > 0 else 0)

    def worst_since(self, mark: int) -> float:
        """The worst lateness in ms observed from `mark` until now, the lateness in progress included."""
        if self._ticks < mark:  # the overdue tick at mark has not fired yet: nothing new to see
            return 0.0
        start = max(mark, self._ticks - RING)
        worst = self.current_ms()
        lag = self._lag
        for n in range(start, self._ticks):
            v = lag[n % RING]
            if v > worst:
                worst = v
        return worst

    def overloaded(self, now: float | None = None) -> bool:
        """The loop stays late: SUSTAINED_TICKS ticks over the threshold within the last WINDOW_S
        (a lateness in progress over the threshold counts as one)."""
        if self._handle is None:
            return False
        now = time.monotonic() if now is None else now
        late = 1 if self.current_ms() > self.threshold_ms else 0
        horizon = now - WINDOW_S
        late += sum(1 for at, _ in self._late if at >= horizon)
        return late >= SUSTAINED_TICKS

    def recent_worst_ms(self) -> float:
        """The worst lateness within the last WINDOW_S (what made `overloaded()` true), or in progress."""
        if self._handle is None:
            return 0.0
        horizon = time.monotonic() - WINDOW_S
        return max([self.current_ms(), *(ms for at, ms in self._late if at >= horizon)])
