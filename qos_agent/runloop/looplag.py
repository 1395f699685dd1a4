"""How late the event loop is, measured continuously and cheaply, so samples can say when the agent lagged.

A timer callback re-arms itself every PERIOD_S (fixed delay, `call_at`); each time it fires it sends
an echo through the ready queue (`call_soon`), and the echo records how late it ran against the
timer's plan: the timer's lateness plus one trip through the callbacks waiting. A late echo means
every callback due meanwhile — the end of a request, a TLS read — was late too, so a latency measured
across that moment includes the agent's own delay. Two callbacks per 10 ms: ~0.1 % of a core.

Ticks go into a ring buffer; a step takes a `mark()` when it starts and asks `delay_since(mark)`
when it ends: an estimate of the agent's own delay inside the step's duration. One long stall (a GC
pause, a blocking call) delays everything in flight by its length: the worst lateness seen. A loop
that stays busy delays every callback a little, and a step waits its turn about HOPS times (connect,
connection made, send, headers, body, each task wake-up): HOPS times the mean lateness while it was
in flight. The estimate is the larger. (On a quiet machine the worst lateness alone missed a
saturated loop: ticks 10–40 ms late, each under the threshold, while steps gained 170 ms;
docs/benchmarks.md.) Lateness is read from time.monotonic(), the clock both loops' timers follow
(uvloop's `loop.time()` is a per-iteration cached millisecond value). `overloaded()` tells the
scheduler the loop *stays* late: SUSTAINED_TICKS ticks over the threshold within the last WINDOW_S,
or most ticks of that window later than threshold / HOPS; one GC pause sheds nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

PERIOD_S = 0.010
RING = 8192  # 8192 ticks × ≥10 ms ≥ 80 s of history; an older mark takes the whole ring
WINDOW_S = 1.0
SUSTAINED_TICKS = 2
HOPS = 10  # times a step waits its turn in the loop: connect, connection_made, send, headers, body, each task wake-up


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
        self._recent: deque[tuple[float, float]] = deque()  # (when, ms) of every tick within WINDOW_S
        self._recent_slow = 0  # how many of them were late by more than threshold / HOPS
        self._pending: deque[float] = deque()  # due times of ticks fired whose echo has not run yet

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
        self._pending.clear()  # an echo left on a previous loop never runs
        self._planned = time.monotonic() + self.period_s
        self._handle = loop.call_at(loop.time() + self.period_s, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        """The timer fired: re-arm it, and send an echo through the ready queue to finish the measure."""
        loop = self._loop
        assert loop is not None
        due = self._planned
        self._planned = time.monotonic() + self.period_s
        self._handle = loop.call_at(loop.time() + self.period_s, self._tick)
        self._pending.append(due)
        loop.call_soon(self._echo, due)

    def _echo(self, due: float) -> None:
        """A callback made ready when the timer fired has now run: how late it is against the timer's
        plan is what any step's callback due then waited — the timer's own lateness plus one trip through
        the ready queue. (uvloop runs due timers before the I/O callbacks of an iteration, so the timer's
        lateness alone would miss a queue of them.)"""
        now = time.monotonic()
        if self._pending:
            self._pending.popleft()
        lag_ms = max(0.0, (now - due) * 1000.0)
        self._lag[self._ticks % RING] = lag_ms
        self._ticks += 1
        self.last_ms = lag_ms
        if lag_ms > self.worst_ms:
            self.worst_ms = lag_ms
        if lag_ms > self.threshold_ms:
            self._late.append((now, lag_ms))
        recent = self._recent
        slow = self.threshold_ms / HOPS
        recent.append((now, lag_ms))
        self._recent_slow += lag_ms > slow
        while recent[0][0] < now - WINDOW_S:
            self._recent_slow -= recent.popleft()[1] > slow

    def _overdue_ms(self) -> float:
        """How overdue the next tick already is (0 when not running)."""
        if self._handle is None:
            return 0.0
        return max(0.0, (time.monotonic() - self._planned) * 1000.0)

    def current_ms(self) -> float:
        """How late the loop is right now: the next tick overdue, or a fired tick's echo still waiting
        its turn (0 when not running)."""
        if self._handle is None:
            return 0.0
        now = time.monotonic()
        due = min(self._planned, self._pending[0]) if self._pending else self._planned
        return max(0.0, (now - due) * 1000.0)

    def mark(self) -> int:
        """A position to ask `worst_since` about later (e.g. when a step starts). A tick already
        overdue now measures a delay that ended before this moment: it is left out."""
        return self._ticks + len(self._pending) + (1 if self._overdue_ms() > 0 else 0)

    def _since(self, mark: int) -> tuple[float, float]:
        """(worst, mean) lateness in ms of the ticks from `mark` until now, the one in progress included."""
        current = self.current_ms()
        if self._ticks < mark:  # the overdue tick at mark has not fired yet: nothing new to see
            return 0.0, 0.0
        start = max(mark, self._ticks - RING)
        worst = total = current
        lag = self._lag
        for n in range(start, self._ticks):
            v = lag[n % RING]
            total += v
            if v > worst:
                worst = v
        return worst, total / (self._ticks - start + 1)

    def worst_since(self, mark: int) -> float:
        """The worst lateness in ms observed from `mark` until now, the lateness in progress included."""
        return self._since(mark)[0]

    def delay_since(self, mark: int) -> float:
        """The agent's own delay, estimated, in ms, from `mark` until now: the worst lateness seen, or
        HOPS times the mean lateness meanwhile, the larger."""
        worst, mean = self._since(mark)
        return max(worst, HOPS * mean)

    def _busy(self) -> bool:
        """Most ticks of the last WINDOW_S were late enough that HOPS of them pass the threshold: the
        loop stays busy (a share, not a mean, so one long pause in the window is not a busy loop)."""
        return len(self._recent) >= 10 and 2 * self._recent_slow > len(self._recent)

    def overloaded(self, now: float | None = None) -> bool:
        """The loop stays late: SUSTAINED_TICKS ticks over the threshold within the last WINDOW_S (a
        lateness in progress over the threshold counts as one), or most of its ticks slow (`_busy`)."""
        if self._handle is None:
            return False
        now = time.monotonic() if now is None else now
        late = 1 if self.current_ms() > self.threshold_ms else 0
        horizon = now - WINDOW_S
        late += sum(1 for at, _ in self._late if at >= horizon)
        return late >= SUSTAINED_TICKS or self._busy()

    def recent_worst_ms(self) -> float:
        """What made `overloaded()` true, in ms: the worst late tick within the last WINDOW_S, the one in
        progress, or HOPS times the window's median lateness."""
        if self._handle is None:
            return 0.0
        horizon = time.monotonic() - WINDOW_S
        median = sorted(ms for _, ms in self._recent)[len(self._recent) // 2] if self._recent else 0.0
        return max([self.current_ms(), HOPS * median, *(ms for at, ms in self._late if at >= horizon)])
