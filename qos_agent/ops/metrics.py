"""The agent's own Prometheus metrics, in a registry of its own (never the process-global one).

Two kinds of series:
- per journey × region, counted as results arrive (`observe`): final runs by outcome, run latency
  histograms, failed steps by error class;
- the agent's state (in flight, lags, spool, exports, memory, reloads), read at scrape time from a
  snapshot function, so a scrape always shows the values of that instant and nothing has to be
  pushed into gauges on a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from qos_agent.model import JourneyResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A journey run takes from ~10 ms (loopback HTTP) to ~30 s (a slow browser journey hitting timeouts).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


@dataclass(slots=True)
class AgentState:
    """What the agent is doing right now: one scrape reads one of these."""

    agent: str = ""
    region: str = ""
    version: str = ""
    journeys_scheduled: int = 0
    in_flight: int = 0
    runs_started: int = 0
    skipped_overlaps: int = 0
    runs_shed: int = 0
    scheduler_lag_p99_ms: float = 0.0
    event_loop_lag_ms: float = 0.0
    spool_depth: int = 0
    spool_fill: float = 0.0  # the fullest spool's used/max share, 0..1
    exported: int = 0
    export_errors: int = 0
    dropped: int = 0
    dead_letter: int = 0
    rss_bytes: float = 0.0
    reloads: int = 0
    reload_failures: int = 0
    last_reload_ok: bool = True
    last_reload_success_s: float = 0.0  # unix time of the last good load (the start counts)


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], AgentState]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot()
        info = GaugeMetricFamily("qos_agent_info", "The agent's identity (value is always 1)",
                                 labels=["agent", "region", "version"])
        info.add_metric([s.agent, s.region, s.version], 1)
        yield info
        gauges: Iterable[tuple[str, str, float]] = (
            ("qos_agent_journeys_scheduled", "Journeys this agent schedules", s.journeys_scheduled),
            ("qos_agent_in_flight", "Journey runs in flight", s.in_flight),
            ("qos_agent_scheduler_lag_p99_seconds", "p99 of how late runs started against their plan",
             s.scheduler_lag_p99_ms / 1000),
            ("qos_agent_event_loop_lag_seconds", "How late the event loop fired its latest 10 ms timer",
             s.event_loop_lag_ms / 1000),
            ("qos_agent_spool_depth_points", "Points waiting in the durable spools", s.spool_depth),
            ("qos_agent_spool_fill_ratio", "The fullest spool's used share of its max_spool_mb", s.spool_fill),
            ("qos_agent_resident_memory_bytes", "Resident memory of the agent process", s.rss_bytes),
            ("qos_agent_config_last_reload_success", "1 if the last load/reload of the file was valid",
             1.0 if s.last_reload_ok else 0.0),
            ("qos_agent_config_last_reload_success_timestamp_seconds",
             "Unix time of the last valid load of the file", s.last_reload_success_s),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        counters: Iterable[tuple[str, str, float]] = (
            ("qos_agent_runs_started", "Journey runs started", s.runs_started),
            ("qos_agent_skipped_overlaps", "Ticks skipped because the previous run was in flight",
             s.skipped_overlaps),
            ("qos_agent_runs_shed", "Ticks that started no run because the event loop stayed late",
             s.runs_shed),
            ("qos_agent_exported_points", "Points the sinks accepted", s.exported),
            ("qos_agent_export_errors", "Failed writes to a sink", s.export_errors),
            ("qos_agent_dropped_points", "Points dropped (full queue, spool size bound, failed write)", s.dropped),
            ("qos_agent_dead_letter_points", "Points a sink refused for good", s.dead_letter),
            ("qos_agent_config_reloads", "Valid reloads of the journeys file", s.reloads),
            ("qos_agent_config_reload_failures", "Reloads refused because the file was invalid",
             s.reload_failures),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)


class AgentMetrics:
    """The registry `/metrics` renders; `observe` is called with every batch of results."""

    def __init__(self, snapshot: Callable[[], AgentState]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StateCollector(snapshot))
        self.runs = Counter("qos_journey_runs", "Final journey runs by outcome",
                            ["journey", "region", "kind", "outcome"], registry=self.registry)
        self.attempts = Counter("qos_journey_attempts", "Every journey attempt, retries included, by outcome",
                                ["journey", "region", "outcome"], registry=self.registry)
        self.latency = Histogram("qos_journey_duration_seconds", "Duration of final journey runs",
                                 ["journey", "region"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.step_errors = Counter("qos_step_errors", "Failed steps by error class",
                                   ["journey", "step", "region", "error"], registry=self.registry)

    def observe(self, results: Sequence[JourneyResult]) -> None:
        for r in results:
            self.attempts.labels(r.journey, r.region, str(r.outcome)).inc()
            for step in r.steps:
                if step.error is not None:
                    self.step_errors.labels(r.journey, step.step, r.region, str(step.error)).inc()
            if r.final:
                self.runs.labels(r.journey, r.region, str(r.kind), str(r.outcome)).inc()
                self.latency.labels(r.journey, r.region).observe(r.duration_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
