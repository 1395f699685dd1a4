"""The long-lived agent: schedule, run, export and watch itself, until SIGTERM; SIGHUP reloads.

It never exits because of a target: runs turn failures into results. On SIGTERM/SIGINT it stops
scheduling, lets runs in flight finish within a grace period, flushes every exporter and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from qos_agent.config.loader import load_config
from qos_agent.delivery.pipeline import Pipeline
from qos_agent.errors import ConfigError, SetupError
from qos_agent.language.secrets import Redactor, redacted_logs
from qos_agent.model import Config, Journey, JourneyResult, Point
from qos_agent.ops.health import HealthServer, agent_state, serve_health
from qos_agent.ops.metrics import AgentMetrics
from qos_agent.ops.watch import file_sha256, watch_file
from qos_agent.quality.evaluator import Evaluator
from qos_agent.runloop.placement import select_journeys
from qos_agent.runloop.runner import Runner
from qos_agent.runloop.scheduler import Scheduler

log = logging.getLogger(__name__)

SELF_METRICS_EVERY_S = 10.0
GRACE_S = 15.0


def ensure_state_dir(config: Config) -> Path:
    path = Path(config.agent.state_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise SetupError(f"state_dir {path} is not writable: {e.strerror} "
                         "(set agent.state_dir to a writable directory)") from None
    return path


def rss_mb() -> float:
    """Resident memory now (not the peak), from /proc; 0 where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class Agent:
    def __init__(self, config: Config, config_path: str | None = None, region: str | None = None) -> None:
        self.config = config
        self.config_path = config_path or config.path
        self.region_override = region
        self.redact = Redactor(config.secrets)
        self.runner = Runner(config, self.redact)
        self.pipeline = Pipeline.from_config(config, self.redact)
        self.evaluator = Evaluator(config.journeys, config.agent.name)
        lag = self.runner.looplag
        self.scheduler = Scheduler(self.journeys(config), self.runner.run, self.on_results,
                                   config.agent.concurrency, overloaded=lag.overloaded,
                                   lag_ms=lag.recent_worst_ms)
        self.stop_event = asyncio.Event()
        self.reload_error = ""
        self.reloads = 0
        self.listeners: list[Callable[[list[JourneyResult], list[Point]], None]] = []  # e.g. the live demo view
        # The endpoint and live reload (qos_agent/ops/health.py, metrics.py, watch.py).
        self.config_hash = file_sha256(self.config_path)
        self.reload_failures = 0
        self.last_reload_success_s = time.time()
        self.metrics = AgentMetrics(lambda: agent_state(self))
        self.listen_override: str | None = None  # "" turns the endpoint off, e.g. several agents in one process
        self.watch = False  # `run --watch`: reload when the file's content changes
        self.health: HealthServer | None = None
        self.health_url = ""  # the endpoint's bound address once running, e.g. http://127.0.0.1:9469

    def journeys(self, config: Config) -> list[Journey]:
        return select_journeys(config.journeys, config.agent)

    def on_results(self, results: list[JourneyResult]) -> None:
        self.metrics.observe(results)
        self.pipeline.submit(results)
        disruptions = self.evaluator.observe(results)
        if disruptions:
            for point in disruptions:
                log.warning("disruption %s: %s in %s: %s (uptime %s)", point.tag("state"), point.tag("journey"),
                            point.tag("region"), point.field("reason"), "green" if point.field("uptime_ok") else "red")
            self.pipeline.submit_points(disruptions)
        for listener in self.listeners:
            listener(results, disruptions)

    async def run(self, duration_s: float | None = None, handle_signals: bool = True) -> None:
        """Until SIGTERM/SIGINT (or duration_s); `handle_signals=False` when several agents share a process."""
        with redacted_logs(self.redact):
            await self._run(duration_s, handle_signals)

    async def _run(self, duration_s: float | None, handle_signals: bool) -> None:
        ensure_state_dir(self.config)
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if handle_signals else ()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop_event.set)
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.runner.probes.start(self.scheduler.journeys.values())
        self.runner.looplag.start()
        self.pipeline.start()
        self.scheduler.start()
        selected = len(self.scheduler.journeys)
        log.info("agent %s in region %s: %d journeys scheduled (event loop: %s)", self.config.agent.name,
                 self.config.agent.region, selected, type(loop).__module__.split(".")[0])
        helpers = [asyncio.create_task(self._self_metrics())]
        if self.watch:
            helpers.append(asyncio.create_task(watch_file(self.config_path, lambda: self.config_hash, self.reload)))
        try:
            self.health = await serve_health(self)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), duration_s)
        finally:
            log.info("stopping: waiting up to %.0fs for %d runs in flight", GRACE_S, self.scheduler.in_flight)
            await self.scheduler.stop(GRACE_S)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.pipeline.submit_points([self.self_point()])
            await self.runner.close()
            await self.pipeline.close()
            if self.health is not None:
                await self.health.stop()
            for sig in signals:
                loop.remove_signal_handler(sig)

    def reload(self) -> None:
        """SIGHUP: re-validate; when valid swap the schedule, else keep the old one running."""
        digest = file_sha256(self.config_path)
        try:
            config = load_config(self.config_path, region=self.region_override)
        except ConfigError as e:
            self.reload_error = str(e)
            self.reload_failures += 1
            log.error("reload refused, keeping the running configuration:\n%s", e)
            return
        self.reload_error = ""
        self.reloads += 1
        self.config_hash = digest
        self.last_reload_success_s = time.time()
        self.config = config
        self.redact.secrets = Redactor(config.secrets).secrets
        self.runner.config = config
        self.evaluator.update_journeys(config.journeys)
        self.scheduler.replace(self.journeys(config))
        log.info("reloaded %s: %d journeys scheduled", self.config_path, len(self.scheduler.journeys))

    @property
    def loop_lag_ms(self) -> float:
        """The event loop's latest lateness (a 10 ms timer's, see looplag.py), or the one in progress."""
        lag = self.runner.looplag
        return max(lag.current_ms(), lag.last_ms)

    async def _self_metrics(self) -> None:
        while True:
            await asyncio.sleep(SELF_METRICS_EVERY_S)
            self.pipeline.submit_points([self.self_point()])

    def self_point(self) -> Point:
        sinks = self.pipeline.stats
        spool_depth = dead_letter = spool_dropped = 0
        for stats in self.pipeline.exporter_stats():
            spool_depth += int(getattr(stats, "depth", 0))
            dead_letter += int(getattr(stats, "dead_letter", 0))
            spool_dropped += int(getattr(stats, "dropped", 0))
        fields = (
            ("in_flight", self.scheduler.in_flight),
            ("scheduler_lag_ms", round(self.scheduler.stats.lag_p99_ms(), 3)),
            ("event_loop_lag_ms", round(self.loop_lag_ms, 3)),
            ("spool_depth", spool_depth),
            ("exported", sinks.exported),
            ("export_errors", sinks.export_errors),
            ("dropped", sinks.dropped + spool_dropped),
            ("dead_letter", dead_letter),
            ("skipped_overlaps", self.scheduler.stats.skipped_overlaps),
            ("shed", self.scheduler.stats.shed),
            ("event_loop_lag_worst_ms", round(self.runner.looplag.worst_ms, 3)),
            ("runs", self.scheduler.stats.started),
            ("rss_mb", round(rss_mb(), 2)),
        )
        tags = (("agent", self.config.agent.name), ("region", self.config.agent.region))
        return Point("agent", tags, fields, time.time_ns() // 1_000_000)


async def run_agent(path: str, region: str | None = None, duration_s: float | None = None,
                    watch: bool = False, config: Config | None = None) -> None:
    config = config or load_config(path, region=region)
    agent = Agent(config, path, region)
    agent.watch = watch
    await agent.run(duration_s)
