"""The agent's endpoint (`agent.listen`): `/healthz` for orchestrators, `/metrics` for Prometheus.

`/healthz` answers 200 with `status: ok`; 200 with `status: degraded` when the last reload was
refused (the previous configuration still runs: restarting would not help, fixing the file would)
or a sink has records waiting and has delivered nothing for `agent.sink_stale_after` (named, with
its last error); or 503 with `status: unhealthy` when the agent no longer measures: the scheduler
is stuck (no run started for longer than any journey's allowance, or its lag p99 is huge) or a
spool is over 90 % full (its sink has been down so long that points are about to be dropped). The
body always says why, in `problems`. Both endpoints read the one AgentStats snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from qos_agent.errors import SetupError
from qos_agent.ops.metrics import CONTENT_TYPE, AgentMetrics
from qos_agent.ops.stats import AgentStats

log = logging.getLogger(__name__)

SPOOL_FULL = 0.9
LAG_HUGE_MIN_MS = 60_000.0  # runs start over a minute (and over an interval) late: unhealthy
PROGRESS_POLL_S = 0.25


def parse_listen(listen: str) -> tuple[str, int] | None:
    """'127.0.0.1:9469' / '[::1]:9469' / ':9469' -> (host, port); None when disabled ('' or 'off')."""
    if not listen or listen.lower() == "off":
        return None
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass(slots=True)
class Progress:
    """When a run last started, seen by polling the scheduler's counter (the scheduler stays untouched)."""

    started: int = -1
    at: float = field(default_factory=time.monotonic)

    def update(self, started: int) -> None:
        if started != self.started:
            self.started = started
            self.at = time.monotonic()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stale_sinks(stats: AgentStats, now_s: float) -> list[str]:
    """Sinks with records waiting that delivered nothing for sink_stale_after (since start if never)."""
    out = []
    for sink in stats.sinks:
        st = sink.stats
        waiting = st.spooled + st.queued
        since = st.last_delivery_s or stats.started_s
        if waiting and now_s - since > stats.sink_stale_after_s:
            why = f": {st.last_error}" if st.last_error else ""
            out.append(f"sink {sink.name} has delivered nothing for {now_s - since:.0f}s "
                       f"({waiting} points waiting){why}")
    return out


def assess(stats: AgentStats, progress: Progress) -> tuple[int, dict[str, object]]:
    """The /healthz answer: HTTP status and JSON body."""
    problems: list[str] = []
    unhealthy = False
    if stats.stuck_after_s is not None:
        idle = time.monotonic() - progress.at
        if idle > stats.stuck_after_s:
            unhealthy = True
            problems.append(f"scheduler stuck: no run started for {idle:.1f}s (allowance {stats.stuck_after_s:.1f}s)")
    if stats.shortest_interval_s is not None and \
            stats.scheduler_lag_p99_ms > max(LAG_HUGE_MIN_MS, stats.shortest_interval_s * 1000):
        unhealthy = True
        problems.append(f"scheduler lag p99 is {stats.scheduler_lag_p99_ms / 1000:.1f}s")
    for sink in stats.sinks:
        if sink.spool_fill > SPOOL_FULL:
            unhealthy = True
            problems.append(f"spool {sink.name} is {sink.spool_fill:.0%} full: its sink is not accepting points")
    stale = _stale_sinks(stats, time.time())
    problems.extend(stale)
    if stats.reload_error:
        problems.append("the last reload was refused; the previous configuration is still running")
    status = "unhealthy" if unhealthy else "degraded" if stats.reload_error or stale else "ok"
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
        "journeys_scheduled": sorted(stats.journeys_scheduled),
        "last_run": {name: {"time": _iso(run.start_ms), "time_ms": run.start_ms, "outcome": run.outcome}
                     for name, run in sorted(stats.last_run.items())},
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
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
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
            self.progress.update(self.snapshot().runs_started)
            await asyncio.sleep(PROGRESS_POLL_S)

    async def _healthz(self, request: web.Request) -> web.Response:
        stats = self.snapshot()
        self.progress.update(stats.runs_started)
        status, body = assess(stats, self.progress)
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        # Rendered on the loop: the collector reads live agent state that only the loop may touch.
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
