"""The agent's own Prometheus metrics, in a registry of its own (never the process-global one).

Two kinds of series:
- per journey × region, counted as results arrive (`observe`): the journey series of the Prometheus
  contract (qos_agent/ops/journey_metrics.py: runs, durations, steps, phases, failures, disruptions,
  objectives) and every attempt, retries included;
- the agent's state (in flight, lags, spool, exports, memory, reloads; per sink labelled `sink`),
  read at scrape time from the one AgentStats snapshot (qos_agent/ops/stats.py), so a scrape
  always shows the values of that instant and nothing has to be pushed into gauges on a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from qos_agent.model import JourneyResult, Point
from qos_agent.ops.journey_metrics import JourneyMetrics
from qos_agent.ops.openmetrics import EOF, registry_openmetrics
from qos_agent.ops.stats import AgentStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], AgentStats]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot()
        t = s.total
        info = GaugeMetricFamily("qos_agent_info", "The agent's identity (value is always 1)",
                                 labels=["agent", "region", "version"])
        info.add_metric([s.agent, s.region, s.version], 1)
        yield info
        gauges: Iterable[tuple[str, str, float]] = (
            ("qos_agent_journeys_scheduled", "Journeys this agent schedules", len(s.journeys_scheduled)),
            ("qos_agent_in_flight", "Journey runs in flight", s.in_flight),
            ("qos_agent_scheduler_lag_p99_seconds", "p99 of how late runs started against their plan",
             s.scheduler_lag_p99_ms / 1000),
            ("qos_agent_event_loop_lag_seconds", "How late the event loop fired its latest 10 ms timer",
             s.event_loop_lag_ms / 1000),
            ("qos_agent_spool_depth_points", "Points waiting in the durable spools", t.spooled),
            ("qos_agent_spool_fill_ratio", "The fullest spool's used share of its max_spool_mb", s.spool_fill),
            ("qos_agent_resident_memory_bytes", "Resident memory of the agent process", s.rss_bytes),
            ("qos_agent_config_last_reload_success", "1 if the last load/reload of the file was valid",
             0.0 if s.reload_error else 1.0),
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
            ("qos_agent_exported_points", "Points the destinations accepted", t.delivered),
            ("qos_agent_export_errors", "Failed writes/sends to a sink", t.failed_sends),
            ("qos_agent_dropped_points", "Points dropped (full queue, spool size bound, failed write)", t.dropped),
            ("qos_agent_dead_letter_points", "Points a sink refused for good", t.dead_lettered),
            ("qos_agent_config_reloads", "Valid reloads of the journeys file", s.reloads),
            ("qos_agent_config_reload_failures", "Reloads refused because the file was invalid",
             s.reload_failures),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        yield from _sink_families(s)


def _sink_families(s: AgentStats) -> Iterator[Metric]:
    """One series per sink (label `sink`), from the same snapshot as the aggregates above."""
    gauges = {
        "queued": GaugeMetricFamily("qos_agent_sink_queued_points", "Points waiting in the sink's memory queue",
                                    labels=["sink"]),
        "spooled": GaugeMetricFamily("qos_agent_sink_spooled_points", "Records waiting in the sink's durable store",
                                     labels=["sink"]),
        "fill": GaugeMetricFamily("qos_agent_sink_spool_fill_ratio", "The store's used share of max_spool_mb",
                                  labels=["sink"]),
        "last": GaugeMetricFamily("qos_agent_sink_last_delivery_timestamp_seconds",
                                  "Unix time the destination last accepted a send (0: never)", labels=["sink"]),
    }
    counters = {
        "delivered": CounterMetricFamily("qos_agent_sink_delivered_points", "Points the destination accepted",
                                         labels=["sink"]),
        "failed": CounterMetricFamily("qos_agent_sink_failed_sends", "Send attempts that failed", labels=["sink"]),
        "dead": CounterMetricFamily("qos_agent_sink_dead_lettered_points", "Points refused for good",
                                    labels=["sink"]),
        "dropped": CounterMetricFamily("qos_agent_sink_dropped_points", "Points lost, by cause",
                                       labels=["sink", "cause"]),
        # The store's bounds at work (delivery/bounds.py): what was already counted once, then removed.
        "dead_pruned": CounterMetricFamily(
            "qos_agent_sink_dead_letter_pruned_records",
            "Dead-letter records removed, oldest first, to keep the store within max_spool_mb", labels=["sink"]),
        "aside_pruned": CounterMetricFamily(
            "qos_agent_sink_damaged_files_pruned",
            "Moved-aside damaged store files removed, oldest first, to stay within bounds", labels=["sink"]),
        "pruned": CounterMetricFamily("qos_agent_sink_pruned_points", "Points a store removed before their "
                                      "retention, oldest first, to stay within its max_mb", labels=["sink"]),
    }
    for sink in s.sinks:
        st, label = sink.stats, [sink.name]
        gauges["queued"].add_metric(label, st.queued)
        gauges["spooled"].add_metric(label, st.spooled)
        gauges["fill"].add_metric(label, sink.spool_fill)
        gauges["last"].add_metric(label, st.last_delivery_s)
        counters["delivered"].add_metric(label, st.delivered)
        counters["failed"].add_metric(label, st.failed_sends)
        counters["dead"].add_metric(label, st.dead_lettered)
        counters["dead_pruned"].add_metric(label, sink.dead_pruned)
        counters["aside_pruned"].add_metric(label, sink.aside_pruned)
        counters["pruned"].add_metric(label, st.pruned)
        for cause, n in sorted(st.dropped_by_cause.items()):
            counters["dropped"].add_metric([sink.name, cause], n)
    yield from gauges.values()
    yield from counters.values()


class AgentMetrics:
    """The registry `/metrics` renders; `observe` is called with every batch of results."""

    def __init__(self, snapshot: Callable[[], AgentStats]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StateCollector(snapshot))
        self.journeys = JourneyMetrics()  # rendered by its own fast path, not through the registry

    def observe(self, results: Sequence[JourneyResult], disruptions: Sequence[Point] = ()) -> None:
        self.journeys.observe(results, disruptions)

    def render(self, openmetrics: bool = False) -> bytes:
        """The text format (0.0.4), or with `openmetrics` OpenMetrics 1.0 (exemplars on the durations)."""
        if openmetrics:
            return registry_openmetrics(self.registry) + self.journeys.render(openmetrics=True) + EOF
        return generate_latest(self.registry) + self.journeys.render()
