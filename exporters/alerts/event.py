"""What the alert sinks share: a disruption point read as an event, and the words a person reads.

The `alertmanager` and `webhook` sinks only turn `disruption` points into records and send them
(through qos_agent/sinks/http.py and the one send policy); the core's delivery layer keeps the
records durably and retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from qos_agent.model import Point
from qos_agent.sinks.labels import DEFAULT_SEVERITY  # the same default on /metrics and in rules.yml

_OWN_TAGS = frozenset({"agent", "journey", "region", "state"})


@dataclass(frozen=True, slots=True)
class DisruptionEvent:
    """One `disruption` point (open or close), with the fields an alert needs."""

    journey: str
    region: str
    agent: str
    state: str  # open | close
    time_ms: int
    opened_ms: int
    reason: str
    uptime_ok: bool
    failed_step: str = ""
    error: str = ""
    error_message: str = ""
    trace_id: str = ""  # the last failed run's trace
    severity: str = DEFAULT_SEVERITY
    runbook: str = ""
    duration_s: float | None = None
    close_reason: str = ""  # a close: healed | removed (from this agent by a reload) | restart (not seen again)
    tags: tuple[tuple[str, str], ...] = ()  # the journey's own tags
    fields: dict[str, object] = field(default_factory=dict)  # every field of the point

    @classmethod
    def of(cls, point: Point) -> DisruptionEvent | None:
        """The event of a disruption point; None for every other point."""
        if point.measurement != "disruption":
            return None
        tags = dict(point.tags)
        fields: dict[str, object] = dict(point.fields)
        state = tags.get("state", "")
        if state not in ("open", "close") or not tags.get("journey"):
            return None
        duration = fields.get("duration_s")
        return cls(
            journey=tags["journey"], region=tags.get("region", ""), agent=tags.get("agent", ""), state=state,
            time_ms=point.time_ms, opened_ms=int(str(fields.get("opened_ms", point.time_ms))),
            reason=str(fields.get("reason", "")), uptime_ok=fields.get("uptime_ok") is True,
            failed_step=str(fields.get("failed_step", "")), error=str(fields.get("error", "")),
            error_message=str(fields.get("error_message", "")), trace_id=str(fields.get("trace_id", "")),
            severity=str(fields.get("severity") or DEFAULT_SEVERITY), runbook=str(fields.get("runbook", "")),
            duration_s=float(duration) if isinstance(duration, int | float) else None,
            close_reason=str(fields.get("close_reason", "")) if state == "close" else "",
            tags=tuple(sorted((k, v) for k, v in tags.items() if k not in _OWN_TAGS)), fields=fields)

    @property
    def key(self) -> str:
        """Which disruption: stable from open to close (and across restarts)."""
        return f"{self.agent}/{self.journey}/{self.region}"

    @property
    def hidden(self) -> bool:
        """Uptime monitoring of the same service stayed green: nobody else will page for this."""
        return self.uptime_ok

    def summary(self) -> str:
        """One line a person reads on a phone."""
        if self.state == "close":
            took = f" after {_duration(self.duration_s)}" if self.duration_s is not None else ""
            if self.close_reason == "removed":
                return f"RESOLVED: {self.journey} is no longer measured in {self.region} by this agent{took}"
            if self.close_reason == "restart":
                return f"RESOLVED: {self.journey} in {self.region} was not seen broken again after the agent restarted"
            return f"RESOLVED: {self.journey} works again in {self.region}{took}"
        where = f" at step {self.failed_step}" if self.failed_step else ""
        hidden = " (uptime green: hidden from uptime monitoring)" if self.hidden else ""
        return f"{self.journey} broken in {self.region}{where}: {self.reason}{hidden}"

    def description(self) -> str:
        since = iso(self.opened_ms)
        text = (f"Journey {self.journey} as customers in {self.region} use it (measured by agent {self.agent}) "
                f"has broken its objective since {since}: {self.reason}.")
        if self.failed_step:
            text += f" Last failure: step {self.failed_step}"
            text += f" ({self.error}: {self.error_message})." if self.error else "."
        text += (" The uptime check of the same service stayed green, so uptime monitoring does not show this."
                 if self.hidden else " The uptime check saw a problem too (or there is none for this service).")
        if self.state == "close":
            why = {"removed": " (a reload took the journey away from this agent: it is no longer measured here)",
                   "restart": " (the agent restarted and did not see it broken again)"}.get(self.close_reason, "")
            text += f" It closed at {iso(self.time_ms)}{why}."
        return text


def _duration(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def iso(ms: float) -> str:
    """RFC 3339 with milliseconds, UTC (Alertmanager's and PagerDuty's timestamps)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
