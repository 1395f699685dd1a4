"""The scorecard's period: `--since 7d` (ending now) or `--period week|month|quarter` (calendar, UTC).

A calendar period is the last complete one: run on a Monday, `--period week` is last Monday 00:00 UTC
to this Monday 00:00 UTC, so a weekly job reports a whole week. The trend compares with the period
just before: the same length for `--since`, the previous calendar period (of its own length) for
`--period`. Windows are half-open, [from, to), in epoch milliseconds.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from qos_agent.reports.errors import ReportError

PERIODS = ("week", "month", "quarter")
DEFAULT_SINCE = "7d"
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
MAX_SINCE_S = 400 * 86400.0


@dataclass(frozen=True, slots=True)
class Window:
    from_ms: int
    to_ms: int
    label: str  # "last 7d", "week 2024-06-10", "2024-06", "2024-Q2"

    @property
    def seconds(self) -> float:
        return (self.to_ms - self.from_ms) / 1000

    def contains(self, t_ms: int) -> bool:
        return self.from_ms <= t_ms < self.to_ms

    def slices(self, n: int) -> list[Window]:
        """The window cut into n consecutive windows (to read in parallel)."""
        edges = [self.from_ms + (self.to_ms - self.from_ms) * k // n for k in range(n + 1)]
        return [Window(a, b, self.label) for a, b in itertools.pairwise(edges) if b > a]


def iso(ms: int) -> str:
    """A time as people and JSON read it, always UTC: 2024-06-10T00:00:00Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def since_seconds(text: str) -> float:
    """'7d' / '36h' / '2w' / '90m' -> seconds; ReportError otherwise."""
    m = _SINCE.match(text) if len(text) < 40 else None
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)] if m else 0.0
    if not m or seconds <= 0 or seconds > MAX_SINCE_S:
        raise ReportError(f"--since {text!r} is not a duration up to 400d (use e.g. 30m, 24h, 7d, 2w)")
    return seconds


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _calendar_start(kind: str, moment: datetime) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "week":
        return day - timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def _label(kind: str, start: datetime) -> str:
    if kind == "week":
        return f"week of {start:%Y-%m-%d}"
    if kind == "month":
        return f"{start:%Y-%m}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def _calendar(kind: str, end: datetime) -> Window:
    """The calendar period that ends at `end` (a period boundary)."""
    start = _calendar_start(kind, end - timedelta(microseconds=1))
    return Window(_ms(start), _ms(end), _label(kind, start))


def choose(since: str | None, period: str | None, now_ms: int) -> tuple[Window, Window]:
    """The window asked for and the one before it (for the trend)."""
    if since is not None and period is not None:
        raise ReportError("give --since or --period, not both")
    if period is not None:
        if period not in PERIODS:
            raise ReportError(f"--period {period!r} is not one of {', '.join(PERIODS)}")
        this_start = _calendar_start(period, datetime.fromtimestamp(now_ms / 1000, UTC))
        current = _calendar(period, this_start)
        previous = _calendar(period, datetime.fromtimestamp(current.from_ms / 1000, UTC))
        return current, previous
    text = since if since is not None else DEFAULT_SINCE
    span_ms = int(since_seconds(text) * 1000)
    current = Window(now_ms - span_ms, now_ms, f"last {text.strip()}")
    previous = Window(current.from_ms - span_ms, current.from_ms, f"the {text.strip()} before")
    return current, previous
