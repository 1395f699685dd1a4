"""The agent's endpoint (`agent.listen`): `/healthz` for orchestrators, `/metrics` for Prometheus.

`/healthz` answers 200 with `status: ok`, or 200 with `status: degraded` when the last reload was
refused (the previous configuration still runs: restarting would not help, fixing the file would),
or 503 with `status: unhealthy` when the agent no longer measures: the scheduler is stuck (no run
started for longer than any journey's allowance, or its lag p99 is huge) or a spool is over 90 %
full (the sink has been down long enough that points are about to be dropped). The body always
says why, in `problems`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from qos_agent import __version__
from qos_agent.errors import SetupError
from qos_agent.ops.metrics import CONTENT_TYPE, AgentState

if TYPE_CHECKING:
    from qos_agent.delivery.pipeline import Pipeline
    from qos_agent.runloop.agent import Agent

log = logging.getLogger(__name__)

SPOOL_FULL = 0.9
STUCK_INTERVALS = 3.0  # no run started for this many intervals of the most frequent journey...
LAG_HUGE_MIN_MS = 60_000.0  # ...or runs start over a minute (and over an interval) late
PROGRESS_POLL_S = 0.25


def parse_listen(listen: str) -> tuple[str, int] | None:
    """'127.0.0.1:9469' / '[::1]:9469' / ':9469' -> (host, port); None when disabled ('' or 'off')."""
    if not listen or listen.lower() == "off":
        return None
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass(slots=True)
class SpoolUse:
    name: str
    depth: int
    used_bytes: int | None
    max_bytes: int | None

    @property
    def fill(self) -> float:
        if not self.used_bytes or not self.max_bytes:
            return 0.0
        return min(1.0, self.used_bytes / self.max_bytes)


def _first_int(objects: tuple[Any, ...], *names: str) -> int | None:
    for obj in objects:
        for name in names:
            value = getattr(obj, name, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value)
    return None


def spool_use(pipeline: Pipeline) -> list[SpoolUse]:
    """Each spooled sink's depth and fill, read defensively: exporters expose what they have.

    Looked for, in order: `exporter.stats.used_bytes/max_bytes`, `exporter.spool.used_bytes/
    max_bytes`, and the spool's private byte count (until it exposes `used_bytes`).
    """
    out = []
    for sink in pipeline.sinks:
        exporter = sink.exporter
        stats, spool = getattr(exporter, "stats", None), getattr(exporter, "spool", None)
        holders = tuple(o for o in (stats, spool) if o is not None)
        if not holders:
            continue
        depth = _first_int(holders, "depth") or 0
        used = _first_int(holders, "used_bytes", "_bytes")
        limit = _first_int(holders, "max_bytes")
        out.append(SpoolUse(sink.name, depth, used, limit))
    return out


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


def agent_state(agent: Agent) -> AgentState:
    """The numbers both endpoints show (and the `agent` self-metrics point shows too)."""
    sinks = agent.pipeline.stats
    spools = spool_use(agent.pipeline)
    dead = dropped = 0
    for stats in agent.pipeline.exporter_stats():
        dead += int(getattr(stats, "dead_letter", 0))
        dropped += int(getattr(stats, "dropped", 0))
    from qos_agent.runloop.agent import rss_mb

    return AgentState(
        agent=agent.config.agent.name,
        region=agent.config.agent.region,
        version=__version__,
        journeys_scheduled=len(agent.scheduler.journeys),
        in_flight=agent.scheduler.in_flight,
        runs_started=agent.scheduler.stats.started,
        skipped_overlaps=agent.scheduler.stats.skipped_overlaps,
        runs_shed=agent.scheduler.stats.shed,
        scheduler_lag_p99_ms=agent.scheduler.stats.lag_p99_ms(),
        event_loop_lag_ms=agent.loop_lag_ms,
        spool_depth=sum(s.depth for s in spools),
        spool_fill=max((s.fill for s in spools), default=0.0),
        exported=sinks.exported,
        export_errors=sinks.export_errors,
        dropped=sinks.dropped + dropped,
        dead_letter=dead,
        rss_bytes=rss_mb() * 2**20,
        reloads=agent.reloads,
        reload_failures=agent.reload_failures,
        last_reload_ok=not agent.reload_error,
        last_reload_success_s=agent.last_reload_success_s,
    )


def stuck_after_s(agent: Agent) -> float | None:
    """How long without a started run means stuck: 3 intervals of the most frequent journey, but at
    least interval + timeout (a run that hangs until its timeout legitimately delays the next one)."""
    journeys = list(agent.scheduler.journeys.values())
    if not journeys:
        return None
    return min(max(STUCK_INTERVALS * j.interval_s, j.interval_s + j.timeout_s) for j in journeys)


def assess(agent: Agent, progress: Progress) -> tuple[int, dict[str, Any]]:
    """The /healthz answer: HTTP status and JSON body."""
    state = agent_state(agent)
    problems: list[str] = []
    unhealthy = False
    allowance = stuck_after_s(agent)
    if allowance is not None:
        idle = time.monotonic() - progress.at
        if idle > allowance:
            unhealthy = True
            problems.append(f"scheduler stuck: no run started for {idle:.1f}s (allowance {allowance:.1f}s)")
        shortest_ms = min(j.interval_s for j in agent.scheduler.journeys.values()) * 1000
        if state.scheduler_lag_p99_ms > max(LAG_HUGE_MIN_MS, shortest_ms):
            unhealthy = True
            problems.append(f"scheduler lag p99 is {state.scheduler_lag_p99_ms / 1000:.1f}s")
    spools = spool_use(agent.pipeline)
    for spool in spools:
        if spool.fill > SPOOL_FULL:
            unhealthy = True
            problems.append(f"spool {spool.name} is {spool.fill:.0%} full: its sink is not accepting points")
    if agent.reload_error:
        problems.append("the last reload was refused; the previous configuration is still running")
    status = "unhealthy" if unhealthy else "degraded" if agent.reload_error else "ok"
    stats = agent.scheduler.stats
    body: dict[str, Any] = {
        "status": status,
        "problems": problems,
        "agent": state.agent,
        "region": state.region,
        "version": __version__,
        "pid": os.getpid(),
        "config_path": str(agent.config_path),
        "config_hash": agent.config_hash,
        "reloads": agent.reloads,
        "reload_failures": agent.reload_failures,
        "reload_error": agent.redact(agent.reload_error),
        "journeys_scheduled": sorted(agent.scheduler.journeys),
        "last_run": {name: {"time": _iso(ms), "time_ms": ms, "outcome": stats.last_outcome.get(name, "")}
                     for name, ms in sorted(stats.last_run_ms.items())},
        "in_flight": state.in_flight,
        "runs_started": state.runs_started,
        "runs_shed": state.runs_shed,
        "scheduler_lag_p99_ms": round(state.scheduler_lag_p99_ms, 3),
        "event_loop_lag_ms": round(state.event_loop_lag_ms, 3),
        "spool_depth": state.spool_depth,
        "spools": [{"name": s.name, "depth": s.depth, "used_bytes": s.used_bytes, "max_bytes": s.max_bytes,
                    "fill": round(s.fill, 4)} for s in spools],
    }
    return (503 if unhealthy else 200), body


class HealthServer:
    """The aiohttp server behind `agent.listen`; `url` is the bound address (port 0 picks one)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
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
            self.progress.update(self.agent.scheduler.stats.started)
            await asyncio.sleep(PROGRESS_POLL_S)

    async def _healthz(self, request: web.Request) -> web.Response:
        self.progress.update(self.agent.scheduler.stats.started)
        status, body = assess(self.agent, self.progress)
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        # Rendered on the loop: the collector reads live agent state that only the loop may touch.
        return web.Response(body=self.agent.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def serve_health(agent: Agent) -> HealthServer | None:
    """Start the endpoint `agent.listen` names (None when it is off); sets `agent.health_url`."""
    listen = agent.config.agent.listen if agent.listen_override is None else agent.listen_override
    where = parse_listen(listen)
    if where is None:
        return None
    server = HealthServer(agent)
    agent.health_url = await server.start(*where)
    log.info("health and metrics on %s/healthz and %s/metrics", agent.health_url, agent.health_url)
    return server
