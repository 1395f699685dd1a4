"""One disruption and the two points that tell the sinks about it: `open`, then exactly one `close`.

A disruption keeps the point that opened it. So its close carries the same tags (an alert is
identified by its labels, and a reload may change a journey's tags while it is open), a restarted
agent can announce it again exactly as it was first announced (same time, tags and fields: a sink
that already holds it recognises the repeat by agent, journey, region and `opened_ms`), and it can
be closed after its journey left the configuration. `close_reason` says why it closed: `healed`
(the journey passes again) or `removed` (a reload, or the file found at a restart, no longer gives
the journey to this agent: removed, renamed, or moved to another region or shard).
"""

from __future__ import annotations

from dataclasses import dataclass

from qos_agent.model import FieldValue, Point

HEALED = "healed"
REMOVED = "removed"
CLOSE_REASONS = (HEALED, REMOVED)
OWN_TAGS = frozenset({"agent", "journey", "region", "state"})


@dataclass(slots=True)
class Disruption:
    journey: str
    region: str
    reason: str
    opened_ms: int
    uptime_ok: bool | None  # None: no uptime journey checks this service
    closed_ms: int | None = None
    hidden_ms: float = 0.0
    failed_step: str = ""  # of the last failed run: what an alert names
    error: str = ""
    error_message: str = ""
    trace_id: str = ""  # the last failed run's trace: where the on-call engineer goes next
    opened: Point | None = None  # the open point, as the sinks were told it
    close_reason: str = ""  # HEALED | REMOVED once closed
    restored: bool = False  # read from state_dir at start: the first good run after it closes it

    @classmethod
    def of_open_point(cls, point: Point, uptime_ok: bool | None, hidden_ms: float) -> Disruption:
        """The disruption an open point announced (read back from the state file)."""
        fields = dict(point.fields)

        def text(name: str) -> str:
            value = fields.get(name, "")
            return value if isinstance(value, str) else ""

        opened = fields.get("opened_ms", point.time_ms)
        return cls(journey=point.tag("journey") or "", region=point.tag("region") or "", reason=text("reason"),
                   opened_ms=int(opened) if isinstance(opened, int | float) else point.time_ms,
                   uptime_ok=uptime_ok, hidden_ms=hidden_ms, failed_step=text("failed_step"), error=text("error"),
                   error_message=text("error_message"), trace_id=text("trace_id"), opened=point)


def open_point(d: Disruption, agent: str, journey_tags: tuple[tuple[str, str], ...],
               window: tuple[float, float] | None, alert: tuple[str, str] = ("", "")) -> Point:
    """The `open` point (docs/metrics.md): `window` is (success ratio, p95 ms) of the rules' window,
    `alert` the journey's (severity, runbook)."""
    tags = tuple(sorted((("agent", agent), ("journey", d.journey), ("region", d.region), ("state", "open"),
                         *journey_tags)))
    return Point("disruption", tags, tuple(_fields(d, window, alert)), d.opened_ms)


def close_point(d: Disruption, time_ms: int, window: tuple[float, float] | None, close_reason: str) -> Point:
    """The `close` point: the open point's tags and alert fields, the window now (absent when it holds
    no run: a close at start), how long it lasted, and why it closed."""
    assert d.opened is not None and close_reason in CLOSE_REASONS
    opened = dict(d.opened.fields)
    alert = (str(opened.get("severity", "")), str(opened.get("runbook", "")))
    fields = _fields(d, window, alert)
    fields.append(("duration_s", round((time_ms - d.opened_ms) / 1000, 3)))
    if d.uptime_ok is not None:
        fields.append(("hidden_minutes", round(d.hidden_ms / 60000, 3)))
    fields.append(("close_reason", close_reason))
    tags = tuple((k, "close" if k == "state" else v) for k, v in d.opened.tags)
    return Point("disruption", tags, tuple(fields), time_ms)


def _fields(d: Disruption, window: tuple[float, float] | None,
            alert: tuple[str, str]) -> list[tuple[str, FieldValue]]:
    fields: list[tuple[str, FieldValue]] = [("reason", d.reason)]
    if window is not None:
        fields += [("success_ratio", round(window[0], 4)), ("latency_p95_ms", round(window[1], 3))]
    fields.append(("opened_ms", d.opened_ms))
    # What an alert needs to say (extra fields, never tags): the failing step and why, and the
    # journey's `alert: {severity, runbook}`.
    extra = (("failed_step", d.failed_step), ("error", d.error), ("error_message", d.error_message),
             ("trace_id", d.trace_id), ("severity", alert[0]), ("runbook", alert[1]))
    fields.extend((name, value) for name, value in extra if value)
    if d.uptime_ok is not None:
        fields.append(("uptime_ok", d.uptime_ok))
    return fields
