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

from qos_agent import __version__
from qos_agent.config.loader import load_config
from qos_agent.delivery.pipeline import Pipeline
from qos_agent.errors import ConfigError, SetupError
from qos_agent.language.secrets import Redactor, redacted_logs
from qos_agent.language.text import Throttle
from qos_agent.model import Config, Journey, JourneyResult, Point
from qos_agent.ops.health import HealthServer, serve_health
from qos_agent.ops.metrics import AgentMetrics
from qos_agent.ops.reload import Reloader, log_refusal
from qos_agent.ops.stats import AgentStats, LastRun
from qos_agent.ops.watch import file_sha256, watch_file
from qos_agent.quality.evaluator import Evaluator
from qos_agent.quality.openfile import DisruptionFile, file_for
from qos_agent.runloop.placement import select_journeys
from qos_agent.runloop.runner import Runner, longest_run_s
from qos_agent.runloop.scheduler import Scheduler

log = logging.getLogger(__name__)

SELF_METRICS_EVERY_S = 10.0
GRACE_S = 15.0
STUCK_INTERVALS = 3.0  # no run started for this many intervals of the most frequent journey: stuck
STUCK_MARGIN_S, STUCK_MARGIN_SHARE = 1.0, 0.1  # on top of the longest a run may legitimately take


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


def _with_margin(seconds: float) -> float:
    return seconds * (1 + STUCK_MARGIN_SHARE) + STUCK_MARGIN_S


def rss_mb() -> float:
    """Resident memory now (not the peak), from /proc; 0 where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class Agent:
    def __init__(self, config: Config, config_path: str | None = None, region: str | None = None,
                 only: frozenset[str] = frozenset()) -> None:
        self.only = only  # `run --journey NAME`: the names to run (empty: all)
        self.config = config
        self.started_with = config  # its sinks and endpoint run until the process stops
        self.config_path = config_path or config.path
        self.region_override = region
        self.redact = Redactor(config.secrets)
        self.runner = Runner(config, self.redact)
        self.pipeline = Pipeline.from_config(config, self.redact)
        # Open disruptions are kept in state_dir, so a restart closes every one a sink was told of.
        self.evaluator = Evaluator(config.journeys, config.agent.name, owned=self.owned(config),
                                   region=config.agent.region,
                                   store=DisruptionFile(file_for(config.agent.state_dir, config.agent.name)))
        lag = self.runner.looplag
        self.scheduler = Scheduler(self.journeys(config), self.runner.run, self.on_results,
                                   config.agent.concurrency, overloaded=lag.overloaded,
                                   lag_ms=lag.recent_worst_ms)
        self.stop_event = asyncio.Event()
        self.failure_lines = Throttle(60.0)  # failed runs in the log: one line per journey and class a minute
        self.pending_restart: list[str] = []  # what a reload changed that applies only at the next start
        self.ready = False  # /readyz: the scheduler runs (set once started, cleared when stopping)
        self.reload_error = ""
        self.reloads = 0
        self.listeners: list[Callable[[list[JourneyResult], list[Point]], None]] = []  # e.g. the live demo view
        # The endpoint and live reload (qos_agent/ops/health.py, metrics.py, watch.py).
        self.config_hash = file_sha256(self.config_path)
        self.reload_failures = 0
        self.last_reload_success_s = time.time()
        self.started_s = time.time()
        self.metrics = AgentMetrics(self.stats)
        self.metrics.journeys.configure(self.journeys(config), config.agent.region, config.agent.name)
        self.metrics.journeys.hidden_now = self.evaluator.hidden_now  # the hidden time of open disruptions
        self.listen_override: str | None = None  # "" turns the endpoint off, e.g. several agents in one process
        self.watch = False  # `run --watch`: reload when the file's content changes
        self.health: HealthServer | None = None
        self.health_url = ""  # the endpoint's bound address once running, e.g. http://127.0.0.1:9469
        # SIGHUP and --watch: vetted in a limited subprocess, off the loop (qos_agent/ops/reload.py).
        self.reloader = Reloader(self.config_path, region, self.apply_config, self.refuse_reload)

    def journeys(self, config: Config) -> list[Journey]:
        """This agent's journeys (region, shard), and only those `run --journey` named, across reloads."""
        mine = select_journeys(config.journeys, config.agent)
        return [j for j in mine if j.name in self.only] if self.only else mine

    def owned(self, config: Config) -> list[str]:
        """The journeys this agent runs (its region's, its shard's): the evaluator closes the others' disruptions."""
        return [j.name for j in self.journeys(config)]

    def on_results(self, results: list[JourneyResult]) -> None:
        self.pipeline.submit(results)
        self.announce(results, self.evaluator.observe(results))
        for r in results:
            if r.final and not r.outcome.ok:
                self._log_failure(r)

    def _log_failure(self, r: JourneyResult) -> None:
        """A failed run at INFO: the step, its class and message, the trace (one line per journey and class
        a minute, saying how many were held back: a long outage cannot flood the log)."""
        more = self.failure_lines.allow(f"{r.journey}/{r.error}")
        if more is not None:
            log.info("run failed: %s in %s at step %s: %s: %s (trace %s)%s", r.journey, r.region, r.failed_step,
                     r.error, r.error_message, r.trace_id, more)

    def announce(self, results: list[JourneyResult], disruptions: list[Point]) -> None:
        """Results and disruption points to /metrics, the sinks and the listeners (after a run, a reload, at start)."""
        self.metrics.observe(results, disruptions)
        if disruptions:
            for point in disruptions:
                closed = f", {point.field('close_reason')}" if point.tag("state") == "close" else ""
                log.warning("disruption %s%s: %s in %s: %s (uptime %s)", point.tag("state"), closed,
                            point.tag("journey"), point.tag("region"), point.field("reason"),
                            {True: "green", False: "red", None: "not checked"}[point.field("uptime_ok")])  # type: ignore[index]
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
            loop.add_signal_handler(signal.SIGHUP, self.reloader.request)
        await self.runner.probes.start(self.scheduler.journeys.values())
        self.runner.looplag.start()
        self.pipeline.start()
        self.announce([], self.evaluator.start_points())  # what the last agent left open (or lost in a kill -9)
        self.scheduler.start()
        self.ready = True
        selected = len(self.scheduler.journeys)
        sinks = ", ".join(s.name for s in self.pipeline.snapshot()) or "none"
        log.info("agent %s in region %s: %d journeys scheduled, sinks: %s (event loop: %s)", self.config.agent.name,
                 self.config.agent.region, selected, sinks, type(loop).__module__.split(".")[0])
        helpers = [asyncio.create_task(self._self_metrics())]
        if self.watch:
            helpers.append(asyncio.create_task(watch_file(self.config_path, lambda: self.config_hash,
                                                           self.reloader.request, others=lambda: self.config.files)))
        try:
            listen = self.config.agent.listen if self.listen_override is None else self.listen_override
            self.health = await serve_health(listen, self.stats, self.metrics)
            self.health_url = self.health.url if self.health is not None else ""
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), duration_s)
        finally:
            self.ready = False
            log.info("stopping: waiting up to %.0fs for %d runs in flight", GRACE_S, self.scheduler.in_flight)
            await self.scheduler.stop(GRACE_S)
            if self.reloader.task is not None:
                helpers.append(self.reloader.task)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.pipeline.submit_points([self.stats().point()])
            await self.runner.close()
            await self.pipeline.close()
            self.evaluator.stop()  # the sinks have every point: the next start need not repeat closes
            if self.health is not None:
                await self.health.stop()
            for sig in signals:
                loop.remove_signal_handler(sig)

    def reload(self) -> None:
        """Re-validate in-process, now (tests); SIGHUP and --watch use `self.reloader`, off the loop."""
        digest = file_sha256(self.config_path)
        try:
            config = load_config(self.config_path, region=self.region_override)
        except ConfigError as e:
            self.refuse_reload(str(e))
            return
        self.apply_config(config, digest)

    def refuse_reload(self, reason: str) -> None:
        """A bad file: counted, located in the log, /healthz and /metrics; the old configuration runs on."""
        self.reload_error = reason
        self.reload_failures += 1
        log_refusal(self.config_path, reason)

    def apply_config(self, config: Config, digest: str) -> None:
        """Swap in a validated configuration: the schedule changes, runs in flight finish as they were."""
        self.reload_error = ""
        self.reloads += 1
        self.config_hash = digest
        self.last_reload_success_s = time.time()
        self.pending_restart = self._needs_restart(config)
        if self.pending_restart:
            log.warning("reload of %s: %s changed; the running one is kept until the agent restarts",
                        self.config_path, " and ".join(self.pending_restart))
        self.config = config
        self.redact.set(config.secrets)
        self.runner.config = config
        closes = self.evaluator.update_journeys(config.journeys, self.owned(config), config.agent.region)
        self.announce([], closes)  # open disruptions of journeys gone, renamed or moved away: closed, `removed`
        self.scheduler.replace(self.journeys(config))
        self.metrics.journeys.configure(self.journeys(config), config.agent.region, config.agent.name)
        log.info("reloaded %s: %d journeys scheduled", self.config_path, len(self.scheduler.journeys))

    def _needs_restart(self, new: Config) -> list[str]:
        """What a reload cannot apply in place (issue 27: it used to ignore them without a word)."""
        sinks = [(e.type, e.spec) for e in self.started_with.exporters]
        out = ["exporters"] if [(e.type, e.spec) for e in new.exporters] != sinks else []
        return out + (["listen"] if new.agent.listen != self.started_with.agent.listen else [])

    @property
    def loop_lag_ms(self) -> float:
        """The event loop's latest lateness (a 10 ms timer's, see looplag.py), or the one in progress."""
        lag = self.runner.looplag
        return max(lag.current_ms(), lag.last_ms)

    async def _self_metrics(self) -> None:
        while True:
            await asyncio.sleep(SELF_METRICS_EVERY_S)
            self.pipeline.submit_points([self.stats().point()])

    def stuck_after_s(self, running: tuple[str, ...]) -> float | None:
        """How long no run may start (or end) before /healthz calls the scheduler stuck (None: nothing scheduled).

        The most frequent journey should start a run within 3 intervals, or within an interval after
        its own longest run (timeout × attempts + the pauses between them, `longest_run_s`). A run in
        flight can hold what would start next (the concurrency cap, a browser slot) for as long as it
        may legitimately take, so the allowance is never shorter than the longest of the runs in flight.
        """
        journeys = self.scheduler.journeys
        if not journeys:
            return None
        base = min(max(STUCK_INTERVALS * j.interval_s, _with_margin(j.interval_s + longest_run_s(j)))
                   for j in journeys.values())
        busy = (_with_margin(longest_run_s(journeys[name])) for name in running if name in journeys)
        return max([base, *busy])

    def next_run_ms(self) -> dict[str, int]:
        """Each journey's next planned tick as unix ms: the same value until that tick comes, so a reload
        that keeps a journey's timing leaves it as it was (docs/deploy.md, "Live reload")."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:  # a snapshot taken outside the loop (tests)
            return {}
        wall_ms = time.time() * 1000
        return {name: round(wall_ms + (planned - now) * 1000) for name, planned in self.scheduler.next_planned.items()}

    def stats(self) -> AgentStats:
        """The one snapshot /metrics, /healthz and the `agent` point read (built here, only here)."""
        sched = self.scheduler.stats
        journeys = list(self.scheduler.journeys.values())
        running = self.scheduler.running
        return AgentStats(
            agent=self.config.agent.name, region=self.config.agent.region, version=__version__, ready=self.ready,
            journeys_scheduled=sorted(self.scheduler.journeys), in_flight=self.scheduler.in_flight,
            runs_started=sched.started, skipped_overlaps=sched.skipped_overlaps, runs_shed=sched.shed,
            scheduler_lag_p99_ms=sched.lag_p99_ms(), event_loop_lag_ms=self.loop_lag_ms,
            event_loop_lag_worst_ms=self.runner.looplag.worst_ms,
            rss_bytes=rss_mb() * 2**20, sinks=self.pipeline.snapshot(),
            last_run={name: LastRun(ms, sched.last_outcome.get(name, "")) for name, ms in sched.last_run_ms.items()},
            next_run_ms=self.next_run_ms(),
            stuck_after_s=self.stuck_after_s(running), runs_in_flight=running,
            shortest_interval_s=min((j.interval_s for j in journeys), default=None),
            sink_stale_after_s=self.config.agent.sink_stale_after_s, started_s=self.started_s,
            reloads=self.reloads, reload_failures=self.reload_failures,
            reload_error=self.redact(self.reload_error), last_reload_success_s=self.last_reload_success_s,
            pending_restart=list(self.pending_restart),
            config_path=str(self.config_path), config_hash=self.config_hash, time_ms=time.time_ns() // 1_000_000)


async def run_agent(path: str, region: str | None = None, duration_s: float | None = None,
                    watch: bool = False, config: Config | None = None, only: frozenset[str] = frozenset()) -> None:
    config = config or load_config(path, region=region)
    for warning in config.warnings:
        log.warning("%s", warning)
    agent = Agent(config, path, region, only)
    agent.watch = watch
    await agent.run(duration_s)
