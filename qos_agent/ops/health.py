"""The agent's endpoint (`agent.listen`): probes for orchestrators, `/healthz` for people, `/metrics`.

Kubernetes' conventions (Prometheus' `/-/healthy` and `/-/ready` are the model):
- `/livez`: 200 while a restart would not help; 503 only when it would: the scheduler is stuck (no
  run started or ended for longer than the longest a run may legitimately take, retries included:
  `Agent.stuck_after_s`). Never for a sink, a spool or
  a refused reload: restarting never fixes a sink that is down (it restarted into the same 503, a
  crash loop exactly while InfluxDB was down, and measured nothing then).
- `/readyz`: 200 once the configuration is loaded and the scheduler runs; 503 before, and while
  stopping.
- `/healthz`: JSON for people and monitors, `ok | degraded | unhealthy` with `problems`. `unhealthy`
  (503) when the agent no longer measures (stuck, or its lag p99 is huge) or points are being
  dropped right now (a full disk, a full spool dropping its oldest records); `degraded` (200) for the
  other sink and reload problems: a spool over 90 % full, a sink with records waiting that accepted
  nothing for `agent.sink_stale_after`, a refused reload (the previous configuration runs on).
All read the one AgentStats snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from qos_agent.delivery.pipeline import SinkState
from qos_agent.errors import SetupError
from qos_agent.ops import openmetrics
from qos_agent.ops.metrics import CONTENT_TYPE, AgentMetrics
from qos_agent.ops.stats import AgentStats

log = logging.getLogger(__name__)

SPOOL_FULL = 0.9
LAG_HUGE_MIN_MS = 60_000.0  # runs start over a minute (and over an interval) late: unhealthy
PROGRESS_POLL_S = 0.25
DROPPING_WINDOW_S = 60.0  # a drop counted within this long is "being dropped right now"


def parse_listen(listen: str) -> tuple[str, int] | None:
    """'127.0.0.1:9469' / '[::1]:9469' / ':9469' -> (host, port); None when disabled ('' or 'off')."""
    if not listen or listen.lower() == "off":
        return None
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass(slots=True)
class Progress:
    """When a run last started or ended, or a reload re-planned the schedule, seen by polling the
    scheduler's counter, the journeys in flight and the reload count (the scheduler stays untouched:
    nothing is counted per run). A reload counts: journeys it adds (to an agent that had none for a
    while, say) first run within their interval from then, not from the last run before it."""

    started: int = -1
    running: tuple[str, ...] = ()
    reloads: int = 0
    at: float = field(default_factory=time.monotonic)

    def update(self, started: int, running: tuple[str, ...] = (), reloads: int = 0) -> None:
        if started != self.started or running != self.running or reloads != self.reloads:
            self.started, self.running, self.reloads = started, running, reloads
            self.at = time.monotonic()


@dataclass(slots=True)
class DropWatch:
    """When points were last dropped, per cause, seen by polling the counters (they only grow, from 0 at
    the process's start: a cause seen for the first time has dropped that many since the last poll)."""

    seen: dict[str, int] = field(default_factory=dict)
    last_at: dict[str, float] = field(default_factory=dict)
    recent: dict[str, int] = field(default_factory=dict)  # dropped within the window, per cause

    def update(self, by_cause: Mapping[str, int], now: float) -> None:
        for cause, n in by_cause.items():
            before = self.seen.get(cause, 0)
            if n > before:
                self.last_at[cause] = now
                self.recent[cause] = self.recent.get(cause, 0) + n - before
            self.seen[cause] = n
        for cause, at in list(self.last_at.items()):
            if now - at > DROPPING_WINDOW_S:
                del self.last_at[cause]
                self.recent.pop(cause, None)

    def dropping(self) -> dict[str, int]:
        """Causes that dropped points within the window, with how many."""
        return dict(self.recent)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def waiting(sink: SinkState) -> int:
    """What a sink has yet to deliver: a network sink's spool (its memory queue is stored within a moment,
    and an alert sink discards every point but a disruption's), a local sink's memory queue."""
    return sink.stats.spooled if sink.spool_max_bytes else sink.stats.queued


@dataclass(slots=True)
class WaitWatch:
    """Since when each sink has had something waiting (unix time), seen by polling; gone once nothing waits."""

    since: dict[str, float] = field(default_factory=dict)

    def update(self, sinks: list[SinkState], now_s: float) -> None:
        for sink in sinks:
            if waiting(sink):
                self.since.setdefault(sink.name, now_s)
            else:
                self.since.pop(sink.name, None)


def stale_sinks(stats: AgentStats, now_s: float, waits: WaitWatch | None = None) -> list[str]:
    """Sinks with records waiting that delivered nothing for sink_stale_after: counted from the last
    delivery, or from when they began to wait if that is later (since the start without a watch)."""
    out = []
    for sink in stats.sinks:
        st = sink.stats
        n = waiting(sink)
        began = stats.started_s if waits is None else waits.since.get(sink.name, now_s)
        since = max(st.last_delivery_s, began)
        if n and now_s - since > stats.sink_stale_after_s:
            why = f": {st.last_error}" if st.last_error else ""
            out.append(f"sink {sink.name} has delivered nothing for {now_s - since:.0f}s "
                       f"({n} points waiting){why}")
    return out


def stuck(stats: AgentStats, progress: Progress) -> str:
    """Why a restart would help ("" when it would not): no run started for longer than the allowance."""
    if stats.stuck_after_s is None:
        return ""
    idle = time.monotonic() - progress.at
    if idle <= stats.stuck_after_s:
        return ""
    return f"scheduler stuck: no run started or ended for {idle:.1f}s (allowance {stats.stuck_after_s:.1f}s)"


def assess(stats: AgentStats, progress: Progress, drops: DropWatch | None = None,
           waits: WaitWatch | None = None) -> tuple[int, dict[str, object]]:
    """The /healthz answer: HTTP status and JSON body."""
    problems: list[str] = []
    unhealthy = False
    if why := stuck(stats, progress):
        unhealthy = True
        problems.append(why)
    if stats.shortest_interval_s is not None and \
            stats.scheduler_lag_p99_ms > max(LAG_HUGE_MIN_MS, stats.shortest_interval_s * 1000):
        unhealthy = True
        problems.append(f"scheduler lag p99 is {stats.scheduler_lag_p99_ms / 1000:.1f}s")
    if drops is not None and (dropping := drops.dropping()):
        unhealthy = True
        causes = ", ".join(f"{n} ({cause})" for cause, n in sorted(dropping.items()))
        problems.append(f"points are being dropped: {causes} in the last {DROPPING_WINDOW_S:.0f}s")
    degraded = [f"spool {sink.name} is {sink.spool_fill:.0%} full: its sink is not accepting points"
                for sink in stats.sinks if sink.spool_fill > SPOOL_FULL]
    degraded += stale_sinks(stats, time.time(), waits)
    if stats.reload_error:
        degraded.append("the last reload was refused; the previous configuration is still running")
    if stats.pending_restart:
        degraded.append(f"the last reload changed {' and '.join(stats.pending_restart)}: the running ones are kept "
                        "until the agent restarts")
    problems += degraded
    status = "unhealthy" if unhealthy else "degraded" if degraded else "ok"
    total = stats.total
    body: dict[str, object] = {
        "status": status,
        "problems": problems,
        "agent": stats.agent,
        "region": stats.region,
        "version": stats.version,
        "pid": os.getpid(),
        "config_path": stats.config_path,
        "config_hash": stats.config_hash,
        "reloads": stats.reloads,
        "reload_failures": stats.reload_failures,
        "reload_error": stats.reload_error,
        "pending_restart": stats.pending_restart,
        "journeys_scheduled": sorted(stats.journeys_scheduled),
        "last_run": {name: {"time": _iso(run.start_ms), "time_ms": run.start_ms, "outcome": run.outcome}
                     for name, run in sorted(stats.last_run.items())},
        "next_run": {name: {"time": _iso(ms), "time_ms": ms} for name, ms in sorted(stats.next_run_ms.items())},
        "in_flight": stats.in_flight,
        "runs_started": stats.runs_started,
        "runs_shed": stats.runs_shed,
        "scheduler_lag_p99_ms": round(stats.scheduler_lag_p99_ms, 3),
        "event_loop_lag_ms": round(stats.event_loop_lag_ms, 3),
        "spool_depth": total.spooled,
        "spools": [{"name": s.name, "depth": s.stats.spooled, "used_bytes": s.spool_bytes,
                    "max_bytes": s.spool_max_bytes, "fill": round(s.spool_fill, 4),
                    "dead_pruned": s.dead_pruned, "aside_pruned": s.aside_pruned}
                   for s in stats.sinks if s.spool_max_bytes],
        "sinks": [{"name": s.name, "type": s.type, "queued": s.stats.queued, "spooled": s.stats.spooled,
                   "delivered": s.stats.delivered, "failed_sends": s.stats.failed_sends,
                   "dropped": s.stats.dropped, "dropped_by_cause": dict(s.stats.dropped_by_cause),
                   "dead_lettered": s.stats.dead_lettered, "last_error": s.stats.last_error,
                   "last_delivery_s": s.stats.last_delivery_s, "spool_fill": round(s.spool_fill, 4),
                   "pruned": s.stats.pruned}
                  for s in stats.sinks],
    }
    return (503 if unhealthy else 200), body


class HealthServer:
    """The aiohttp server behind `agent.listen`; `url` is the bound address (port 0 picks one)."""

    def __init__(self, snapshot: Callable[[], AgentStats], metrics: AgentMetrics) -> None:
        self.snapshot = snapshot
        self.metrics = metrics
        self.progress = Progress()
        self.drops = DropWatch()
        self.waits = WaitWatch()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int) -> str:
        self._poller = asyncio.create_task(self._poll(), name="health-progress")
        runner = web.AppRunner(self.app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except (OSError, OverflowError) as e:
            await self.stop()
            raise SetupError(f"agent.listen {host}:{port} cannot be served: {getattr(e, 'strerror', None) or e} "
                             "(choose a free port, or 'listen: off')") from None
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        self.url = f"http://{shown}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _poll(self) -> None:
        while True:
            self._observe(self.snapshot())
            await asyncio.sleep(PROGRESS_POLL_S)

    def _observe(self, stats: AgentStats) -> None:
        self.progress.update(stats.runs_started, stats.runs_in_flight, stats.reloads)
        self.drops.update(stats.total.dropped_by_cause, time.monotonic())
        self.waits.update(stats.sinks, time.time())

    async def _healthz(self, request: web.Request) -> web.Response:
        stats = self.snapshot()
        self._observe(stats)
        status, body = assess(stats, self.progress, self.drops, self.waits)
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def _livez(self, request: web.Request) -> web.Response:
        """It answers, so the loop turns; 503 only when the scheduler is stuck (a restart would help)."""
        stats = self.snapshot()
        self._observe(stats)
        why = stuck(stats, self.progress)
        return web.json_response({"status": "stuck" if why else "alive", "problems": [why] if why else []},
                                 status=503 if why else 200, headers={"Cache-Control": "no-store"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready = self.snapshot().ready
        return web.json_response({"status": "ready" if ready else "not ready"}, status=200 if ready else 503,
                                 headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        # Rendered on the loop: the collector reads live agent state that only the loop may touch.
        # OpenMetrics (with exemplars) when the scraper asks for it, as Prometheus does; else the text format.
        if openmetrics.wants_openmetrics(request.headers.get("Accept", "")):
            return web.Response(body=self.metrics.render(openmetrics=True),
                                headers={"Content-Type": openmetrics.CONTENT_TYPE})
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def serve_health(listen: str, snapshot: Callable[[], AgentStats], metrics: AgentMetrics) -> HealthServer | None:
    """Start the endpoint `listen` names (None when it is off)."""
    where = parse_listen(listen)
    if where is None:
        return None
    server = HealthServer(snapshot, metrics)
    url = await server.start(*where)
    log.info("health and metrics on %s/healthz and %s/metrics", url, url)
    return server
