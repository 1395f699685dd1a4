"""The agent's one stats snapshot: what `/metrics`, `/healthz` and the `agent` point all show.

The run loop builds an `AgentStats` in one place (`Agent.stats()`); the operations endpoints only
read it, so the numbers agree between the three and ops never imports the run loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qos_agent.delivery.pipeline import SinkState
from qos_agent.model import Point
from qos_agent.plugins.sinks import SinkStats


@dataclass(slots=True)
class LastRun:
    start_ms: int
    outcome: str


@dataclass(slots=True)
class AgentStats:
    """What the agent is doing right now (counters since the process started)."""

    agent: str = ""
    region: str = ""
    ready: bool = False  # the configuration is loaded and the scheduler runs (not starting, not stopping)
    version: str = ""
    journeys_scheduled: list[str] = field(default_factory=list)
    in_flight: int = 0
    runs_started: int = 0
    skipped_overlaps: int = 0
    runs_shed: int = 0  # ticks that started no run because the event loop stayed late
    scheduler_lag_p99_ms: float = 0.0
    event_loop_lag_ms: float = 0.0
    event_loop_lag_worst_ms: float = 0.0  # the worst lateness since the last snapshot's reset
    rss_bytes: float = 0.0
    sinks: list[SinkState] = field(default_factory=list)
    last_run: dict[str, LastRun] = field(default_factory=dict)
    next_run_ms: dict[str, int] = field(default_factory=dict)  # journey -> its next planned tick (unix ms)
    stuck_after_s: float | None = None  # no run started or ended for this long: stuck (None: nothing scheduled)
    runs_in_flight: tuple[str, ...] = ()  # journeys with a run in flight (a run ending is progress too)
    shortest_interval_s: float | None = None
    sink_stale_after_s: float = 300.0  # agent.sink_stale_after
    started_s: float = 0.0  # unix time the agent started (a sink that never delivered is stale from here)
    reloads: int = 0
    reload_failures: int = 0
    reload_error: str = ""  # redacted; "" when the last load was valid
    pending_restart: list[str] = field(default_factory=list)  # reloaded settings that apply at the next start
    last_reload_success_s: float = 0.0  # unix time of the last good load (the start counts)
    config_path: str = ""
    config_hash: str = ""
    time_ms: int = 0  # when this snapshot was taken

    @property
    def total(self) -> SinkStats:
        """Every sink's account summed (the aggregate series and fields)."""
        total = SinkStats()
        for sink in self.sinks:
            total = total.plus(sink.stats)
        return total

    @property
    def spool_fill(self) -> float:
        """The fullest spool's used share of its max_spool_mb, 0..1."""
        return max((s.spool_fill for s in self.sinks), default=0.0)

    def point(self) -> Point:
        """The `agent` self-metrics point (metrics schema of DESIGN.md)."""
        total = self.total
        fields = (
            ("in_flight", self.in_flight),
            ("scheduler_lag_ms", round(self.scheduler_lag_p99_ms, 3)),
            ("event_loop_lag_ms", round(self.event_loop_lag_ms, 3)),
            ("spool_depth", total.spooled),
            ("queued", total.queued),
            ("exported", total.delivered),
            ("export_errors", total.failed_sends),
            ("dropped", total.dropped),
            ("dead_letter", total.dead_lettered),
            ("skipped_overlaps", self.skipped_overlaps),
            ("shed", self.runs_shed),
            ("event_loop_lag_worst_ms", round(self.event_loop_lag_worst_ms, 3)),
            ("runs", self.runs_started),
            ("rss_mb", round(self.rss_bytes / 2**20, 2)),
        )
        tags = (("agent", self.agent), ("region", self.region))
        return Point("agent", tags, fields, self.time_ms)
