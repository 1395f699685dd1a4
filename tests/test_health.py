"""The agent endpoint, in process: /livez, /readyz, /healthz and /metrics of a real agent running real
journeys against the demo service. /livez is 503 only when the scheduler is starved (a restart would
help), never for a sink; /healthz is unhealthy while points are being dropped (a full spool, a full
disk) and degraded after a refused reload; /readyz is 503 while stopping; `listen: off`; a taken
port is a clear setup error."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from qos_agent.config.loader import load_config
from qos_agent.delivery.bounds import KEEP_ASIDE
from qos_agent.delivery.pipeline import SinkState
from qos_agent.demo.faults import parse_fault_spec
from qos_agent.errors import SetupError
from qos_agent.model import Journey, JourneyResult
from qos_agent.ops import health
from qos_agent.ops.stats import AgentStats
from qos_agent.plugins.sinks import SinkStats
from qos_agent.runloop.agent import Agent
from qos_agent.runloop.runner import RETRY_PAUSE_S, longest_run_s
from tests.support import demo as demo_support
from tests.support.faults import closed_port, silent_server
from tests.support.health import sample, total
from tests.support.influx import InfluxServer, influxd, needs_influxd
from tests.support.smallfs import fill, tmpfs
from tests.support.waiting import until

demo_service = demo_support.demo_service
__all__ = ["influxd"]  # the fixture, imported for pytest

CONFIG = """\
version: 1
agent: {{state_dir: state, region: eu-west, name: a1, listen: "127.0.0.1:0", concurrency: {concurrency}{agent_extra}}}
variables: {{base: "{url}"}}
{exporters}
journeys:
  - name: uptime
    kind: uptime
    interval: 200ms
    timeout: 500ms
    steps:
      - name: health
        timeout: 400ms
        http: {{url: "{{{{ base }}}}/health"}}
        expect: {{status: 200}}
  - name: pay
    interval: 200ms
    timeout: 4s
    steps:
      - name: pay
        timeout: 3s
        http: {{method: POST, url: "{{{{ base }}}}/api/pay", json: {{cart_id: c1, card: "4242 4242 4242 4242"}}}}
        expect: {{status: 200}}
"""


def write_config(tmp_path: Path, url: str, concurrency: int = 50, exporters: str = "", agent_extra: str = "") -> Path:
    path = tmp_path / "journeys.yaml"
    path.write_text(CONFIG.format(url=url, concurrency=concurrency, exporters=exporters, agent_extra=agent_extra))
    return path


@asynccontextmanager
async def running(path: Path) -> AsyncIterator[tuple[Agent, aiohttp.ClientSession]]:
    agent = Agent(load_config(path, env={}), str(path))
    task = asyncio.create_task(agent.run(handle_signals=False))
    try:
        async with asyncio.timeout(10):
            while not agent.health_url and not task.done():
                await asyncio.sleep(0.02)
        if task.done():
            await task  # raises what stopped it
        async with aiohttp.ClientSession(trust_env=False) as http:
            yield agent, http
    finally:
        agent.stop_event.set()
        await asyncio.wait_for(task, 30)


async def healthz(agent: Agent, http: aiohttp.ClientSession) -> tuple[int, dict[str, Any]]:
    async with http.get(agent.health_url + "/healthz") as r:
        return r.status, await r.json()


async def probe(agent: Agent, http: aiohttp.ClientSession, path: str) -> int:
    async with http.get(agent.health_url + path) as r:
        return r.status


async def metrics(agent: Agent, http: aiohttp.ClientSession) -> str:
    async with http.get(agent.health_url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await r.text()


async def test_healthz_and_metrics_of_a_running_agent(tmp_path: Path, demo_service: demo_support.DemoService) -> None:
    demo_service.faults.add(parse_fault_spec("path=/api/pay,status=503"))
    path = write_config(tmp_path, demo_service.url)
    async with running(path) as (agent, http):
        assert agent.health_url.startswith("http://127.0.0.1:") and not agent.health_url.endswith(":0")

        async def both_ran() -> dict[str, Any] | None:
            status, body = await healthz(agent, http)
            return body if status == 200 and {"uptime", "pay"} <= set(body["last_run"]) else None

        body = await until(both_ran, limit_s=8)
        assert body["status"] == "ok" and body["problems"] == []
        assert body["config_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert body["config_path"] == str(path)
        assert (body["reloads"], body["reload_error"], body["reload_failures"]) == (0, "", 0)
        assert body["last_run"]["uptime"]["outcome"] == "passed"
        assert body["last_run"]["pay"]["outcome"] == "failed"
        assert body["last_run"]["uptime"]["time"].endswith("Z") and body["last_run"]["uptime"]["time_ms"] > 0
        assert body["spool_depth"] == 0 and body["spools"] == []  # only the local SQLite store
        assert isinstance(body["in_flight"], int) and body["scheduler_lag_p99_ms"] >= 0
        assert body["agent"] == "a1" and body["region"] == "eu-west"
        assert body["journeys_scheduled"] == ["pay", "uptime"]

        text = await metrics(agent, http)
    ok = total(text, "qos_journey_runs_total", journey="uptime", region="eu-west", kind="uptime", outcome="passed")
    failed = total(text, "qos_journey_runs_total", journey="pay", region="eu-west", kind="journey", outcome="failed")
    assert ok is not None and ok >= 1 and failed is not None and failed >= 1
    count = total(text, "qos_journey_duration_seconds_count", journey="uptime", region="eu-west")
    under_30s = total(text, "qos_journey_duration_seconds_bucket", journey="uptime", region="eu-west", le="30.0")
    under_10ms = total(text, "qos_journey_duration_seconds_bucket", journey="uptime", region="eu-west", le="0.01")
    assert count is not None and count == under_30s and under_10ms is not None
    errors = total(text, "qos_step_failures_total", journey="pay", step="pay", region="eu-west", error="status")
    assert errors is not None and errors >= 1
    assert sample(text, "qos_step_failures_total", journey="uptime") is None
    assert sample(text, "qos_agent_info", agent="a1", region="eu-west") == 1
    assert sample(text, "qos_agent_journeys_scheduled") == 2
    started = sample(text, "qos_agent_runs_started_total")
    assert started is not None and started >= 2
    assert sample(text, "qos_agent_exported_points_total") is not None
    for name in ("qos_agent_in_flight", "qos_agent_scheduler_lag_p99_seconds", "qos_agent_event_loop_lag_seconds",
                 "qos_agent_spool_depth_points", "qos_agent_export_errors_total", "qos_agent_dropped_points_total",
                 "qos_agent_dead_letter_points_total"):
        assert sample(text, name) is not None, name
    rss = sample(text, "qos_agent_resident_memory_bytes")
    assert rss is not None and rss > 10 * 2**20
    assert sample(text, "qos_agent_config_reload_failures_total") == 0
    assert sample(text, "qos_agent_config_last_reload_success") == 1


async def test_a_run_held_past_its_longest_legitimate_time_answers_503_then_recovers(
        tmp_path: Path, demo_service: demo_support.DemoService, monkeypatch: pytest.MonkeyPatch) -> None:
    # One run slot; an `uptime` run that outlives anything its 500 ms timeout allows (as a probe that
    # ignored its cancellation would) holds it, so `pay` cannot start either: the agent measures
    # nothing, and says so (allowance: uptime's interval + longest run, with the margin, about 1.8 s).
    path = write_config(tmp_path, demo_service.url, concurrency=1)
    release = asyncio.Event()
    async with running(path) as (agent, http):
        real = agent.scheduler.run_journey

        async def hung(journey: Journey) -> list[JourneyResult]:
            if journey.name == "uptime" and not release.is_set():
                await release.wait()
            return await real(journey)

        monkeypatch.setattr(agent.scheduler, "run_journey", hung)

        async def stuck() -> dict[str, Any] | None:
            status, body = await healthz(agent, http)
            return body if status == 503 else None

        body = await until(stuck, limit_s=15)
        assert body["status"] == "unhealthy"
        assert any(p.startswith("scheduler stuck: no run started or ended for") for p in body["problems"]), body
        assert await probe(agent, http, "/livez") == 503  # this one a restart would help
        release.set()

        async def healthy() -> bool:
            status, body = await healthz(agent, http)
            return status == 200 and body["status"] == "ok"

        assert await until(healthy, limit_s=8)
        assert await probe(agent, http, "/livez") == 200


async def test_a_retrying_run_against_a_hanging_target_is_not_stuck(tmp_path: Path) -> None:
    # Issue 23: the allowance ignored `retries`. One journey every 200 ms whose target never answers:
    # each run is 4 attempts of 500 ms plus 3 pauses (2.75 s) with no other run starting meanwhile;
    # the old allowance (interval + timeout = 0.7 s) called that stuck during every such outage.
    async with silent_server() as port:
        path = tmp_path / "journeys.yaml"
        path.write_text(f"""\
version: 1
agent: {{state_dir: state, region: eu-west, name: a1, listen: "127.0.0.1:0"}}
journeys:
  - name: api
    interval: 200ms
    timeout: 500ms
    retries: 3
    steps:
      - name: get
        timeout: 400ms
        http: {{url: "http://127.0.0.1:{port}/"}}
""")
        async with running(path) as (agent, http):
            seen: list[tuple[int, str]] = []
            loop = asyncio.get_running_loop()
            end = loop.time() + 7.0  # two whole retrying runs and more
            while loop.time() < end:
                status, body = await healthz(agent, http)
                seen.append((status, body["status"]))
                await asyncio.sleep(0.1)
            assert agent.scheduler.stats.started >= 2
            last = agent.stats().last_run["api"]
            assert last.outcome == "failed"
        assert all(s == (200, "ok") for s in seen), [s for s in seen if s != (200, "ok")][:3]
        allowance = agent.stuck_after_s(("api",))
        assert allowance is not None and allowance > 0.2 + 4 * 0.5 + 3 * 0.25


async def test_a_full_spool_is_unhealthy_while_dropping_but_never_a_restart(
        tmp_path: Path, demo_service: demo_support.DemoService) -> None:
    # InfluxDB that refuses connections: the spool (20 KiB here) fills up and drops its oldest records.
    # Restarting would not bring InfluxDB back: /livez and /readyz stay 200 throughout (issue 23: a
    # full spool made the liveness probe 503, a crash loop exactly while the backend was down).
    port = closed_port()
    exporters = (f"exporters:\n  - {{type: influxdb, url: 'http://127.0.0.1:{port}', database: qos, "
                 "max_spool_mb: 0.02, timeout: 1s}")
    path = write_config(tmp_path, demo_service.url, exporters=exporters)
    async with running(path) as (agent, http):

        async def full() -> dict[str, Any] | None:
            assert await probe(agent, http, "/livez") == 200 and await probe(agent, http, "/readyz") == 200
            status, body = await healthz(agent, http)
            return body if status == 503 else None

        body = await until(full, limit_s=15)
        assert body["status"] == "unhealthy"
        assert any(p.startswith("points are being dropped: ") and "(spool_full)" in p for p in body["problems"]), body
        assert any(p.startswith("spool influxdb#0 is ") and "full" in p for p in body["problems"]), body
        (spool,) = body["spools"]
        assert spool["fill"] > 0.9 and spool["max_bytes"] == int(0.02 * 2**20) and body["spool_depth"] > 0
        text = await metrics(agent, http)
        fill = sample(text, "qos_agent_spool_fill_ratio")
        assert fill is not None and fill > 0.9
        depth = sample(text, "qos_agent_spool_depth_points")
        assert depth is not None and depth > 0


async def test_a_refused_reload_is_degraded_not_down(tmp_path: Path,
                                                     demo_service: demo_support.DemoService) -> None:
    path = write_config(tmp_path, demo_service.url)
    good = path.read_text()
    good_hash = hashlib.sha256(good.encode()).hexdigest()
    async with running(path) as (agent, http):
        path.write_text(good.replace("interval: 200ms\n    timeout: 500ms", "intervall: 200ms\n    timeout: 500ms"))
        agent.reload()
        status, body = await healthz(agent, http)
        assert status == 200 and body["status"] == "degraded"
        assert await probe(agent, http, "/livez") == 200 and await probe(agent, http, "/readyz") == 200
        assert f"{path}:8:5: unknown key 'intervall' in a journey" in body["reload_error"]
        assert body["config_hash"] == good_hash and body["reload_failures"] == 1 and body["reloads"] == 0
        text = await metrics(agent, http)
        assert sample(text, "qos_agent_config_reload_failures_total") == 1
        assert sample(text, "qos_agent_config_last_reload_success") == 0
        assert sorted(agent.scheduler.journeys) == ["pay", "uptime"]  # the old configuration runs on

        path.write_text(good + "# a comment changes the hash\n")
        agent.reload()
        status, body = await healthz(agent, http)
        assert (status, body["status"], body["reload_error"], body["reloads"]) == (200, "ok", "", 1)
        assert body["config_hash"] == hashlib.sha256(path.read_bytes()).hexdigest() != good_hash
        text = await metrics(agent, http)
        assert sample(text, "qos_agent_config_last_reload_success") == 1
        assert sample(text, "qos_agent_config_reloads_total") == 1


@pytest.mark.parametrize("listen", ["off", '""', '"${QOS_TEST_LISTEN:-off}"'])
async def test_listen_off_serves_nothing(tmp_path: Path, demo_service: demo_support.DemoService,
                                         listen: str) -> None:
    path = write_config(tmp_path, demo_service.url)
    path.write_text(path.read_text().replace('listen: "127.0.0.1:0"', f"listen: {listen}"))
    config = load_config(path, env={})
    assert config.agent.listen == ""
    agent = Agent(config, str(path))
    await agent.run(duration_s=0.3, handle_signals=False)
    assert agent.health is None and agent.health_url == ""


async def test_a_taken_port_is_a_setup_error(tmp_path: Path, demo_service: demo_support.DemoService) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, demo_service.url)
        path.write_text(path.read_text().replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"'))
        agent = Agent(load_config(path, env={}), str(path))
        with pytest.raises(SetupError, match=rf"agent.listen 127.0.0.1:{port} cannot be served: .*listen: off"):
            await agent.run(duration_s=5, handle_signals=False)



@needs_influxd
@pytest.mark.influx
async def test_sink_counters_are_true_during_a_real_influxd_outage(
        tmp_path: Path, demo_service: demo_support.DemoService, influxd: InfluxServer) -> None:
    exporters = (f"exporters:\n  - {{type: influxdb, url: '{influxd.url}', database: qos, flush_interval: 100ms, "
                 "timeout: 1s}")
    path = write_config(tmp_path, demo_service.url, exporters=exporters, agent_extra=", sink_stale_after: 2s")
    async with running(path) as (agent, http):

        async def sink() -> dict[str, Any]:
            _, body = await healthz(agent, http)
            (one,) = body["sinks"]
            assert one["name"] == "influxdb#0"
            return dict(one)

        async def delivering() -> dict[str, Any] | None:
            s = await sink()
            return s if s["delivered"] > 0 and s["spooled"] == 0 else None

        await until(delivering, limit_s=8)
        influxd.stop()
        await asyncio.sleep(1.0)  # a send under way at the stop has finished one way or the other
        before = await sink()

        async def failing() -> dict[str, Any] | None:  # the next retry comes after a backoff with jitter
            s = await sink()
            return s if s["failed_sends"] > before["failed_sends"] and s["spooled"] > before["spooled"] else None

        during = await until(failing, limit_s=40.0)  # backoff is capped at 30 s
        assert during["delivered"] == before["delivered"]  # only what influxd accepted counts: flat
        assert during["dropped"] == 0 and "cannot reach" in during["last_error"]

        async def degraded() -> dict[str, Any] | None:
            status, body = await healthz(agent, http)
            return body if status == 200 and body["status"] == "degraded" else None

        body = await until(degraded, limit_s=8)
        (problem,) = body["problems"]
        assert problem.startswith("sink influxdb#0 has delivered nothing for") and "cannot reach" in problem
        text = await metrics(agent, http)
        assert sample(text, "qos_agent_sink_delivered_points_total", sink="influxdb#0") == before["delivered"]
        failed = sample(text, "qos_agent_sink_failed_sends_total", sink="influxdb#0")
        assert failed is not None and failed >= during["failed_sends"]
        spooled = sample(text, "qos_agent_sink_spooled_points", sink="influxdb#0")
        assert spooled is not None and spooled >= during["spooled"]
        point = agent.stats().point()  # the agent point reads the same snapshot
        assert point.field("exported") >= before["delivered"] and point.field("spool_depth") >= during["spooled"]

        influxd.start()

        async def recovered() -> dict[str, Any] | None:
            status, body = await healthz(agent, http)
            s = body["sinks"][0]
            return body if (status, body["status"]) == (200, "ok") and s["delivered"] > during["delivered"] else None

        body = await until(recovered, limit_s=40)  # the sink may be in a backoff of up to 30 s
        assert body["problems"] == []
    assert await influxd.wait_count("journey", "qos", 1) > 0


async def test_the_stores_pruning_counters_move_on_metrics(tmp_path: Path,
                                                            demo_service: demo_support.DemoService) -> None:
    """A receiver that refuses every write for good (HTTP 400, as influxd does for a field-type conflict)
    fills the dead_letter table past its share (10 %) of a 100 KiB store: the oldest rows are removed and
    counted; a damaged store file found at start, with three older ones already set aside, prunes one."""
    refused: list[int] = []

    async def write(request: web.Request) -> web.Response:
        await request.read()
        refused.append(1)
        return web.json_response({"error": "field type conflict: input field \"duration_ms\" is type float"},
                                 status=400)

    app = web.Application()
    app.router.add_post("/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        spool = tmp_path / "state" / "spool"
        spool.mkdir(parents=True)
        for k in range(KEEP_ASIDE):
            (spool / f"refusing.db.corrupt-{1_000 + k}").write_bytes(b"old damaged file")
        (spool / "refusing.db").write_bytes(b"garbage, not a database " * 400)
        exporters = (f"exporters:\n  - {{type: influxdb, name: refusing, url: 'http://127.0.0.1:{port}', "
                     "database: qos, create_database: false, max_spool_mb: 0.1, batch_size: 20, "
                     "flush_interval: 50ms}")
        path = write_config(tmp_path, demo_service.url, exporters=exporters)
        async with running(path) as (agent, http):
            text = await metrics(agent, http)
            assert sample(text, "qos_agent_sink_damaged_files_pruned_total", sink="influxdb#0") == 1
            assert sample(text, "qos_agent_sink_dead_letter_pruned_records_total", sink="influxdb#0") == 0

            async def pruned() -> str | None:
                text = await metrics(agent, http)
                n = sample(text, "qos_agent_sink_dead_letter_pruned_records_total", sink="influxdb#0")
                return text if n else None

            text = await until(pruned, limit_s=20)
            status, body = await healthz(agent, http)
        assert status == 200, body  # a refusing sink is not a full spool: the agent stays healthy
        dead = sample(text, "qos_agent_sink_dead_lettered_points_total", sink="influxdb#0")
        gone = sample(text, "qos_agent_sink_dead_letter_pruned_records_total", sink="influxdb#0")
        assert refused and dead is not None and gone is not None and 0 < gone <= dead
        (entry,) = body["spools"]
        assert entry["name"] == "influxdb#0" and entry["aside_pruned"] == 1 and entry["dead_pruned"] >= gone
        assert len(list(spool.glob("refusing.db.corrupt-*"))) == KEEP_ASIDE  # the oldest went
        assert not (spool / "refusing.db.corrupt-1000").exists()
    finally:
        await runner.cleanup()


async def test_readyz_is_503_while_stopping(tmp_path: Path, demo_service: demo_support.DemoService) -> None:
    """Ready once the scheduler runs; not ready while runs in flight finish after SIGTERM."""
    rule = demo_service.faults.add(parse_fault_spec("path=/api/pay,latency=2000ms"))
    path = write_config(tmp_path, demo_service.url)
    try:
        async with running(path) as (agent, http):
            assert await probe(agent, http, "/readyz") == 200 and await probe(agent, http, "/livez") == 200
            # wait for the slow pay run itself: the uptime journey's quick runs are in flight too, and
            # stopping during one of those alone left nothing in flight by the time /readyz was read
            await until(lambda: "pay" in agent.scheduler.running, limit_s=8)
            agent.stop_event.set()  # a pay run is in flight: stopping waits for it, up to the grace period

            async def not_ready() -> bool:
                return await probe(agent, http, "/readyz") == 503

            assert await until(not_ready, limit_s=8)
            assert "pay" in agent.scheduler.running and await probe(agent, http, "/livez") == 200
    finally:
        demo_service.faults.remove(rule)


async def test_a_full_disk_is_unhealthy_while_points_are_dropped(
        tmp_path: Path, demo_service: demo_support.DemoService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23: with the state directory's disk full every point was dropped (disk_full) while
    /healthz said ok. Now unhealthy while it drops, never a restart, and ok again once space returns."""
    monkeypatch.setattr(health, "DROPPING_WINDOW_S", 1.5)
    port = closed_port()
    exporters = f"exporters:\n  - {{type: influxdb, url: 'http://127.0.0.1:{port}', database: qos, timeout: 1s}}"
    path = write_config(tmp_path, demo_service.url, exporters=exporters)
    with tmpfs(tmp_path / "state", size="2m") as state:
        async with running(path) as (agent, http):
            filler = state / "filler"
            fill(filler)

            async def dropping() -> dict[str, Any] | None:
                assert await probe(agent, http, "/livez") == 200
                status, body = await healthz(agent, http)
                return body if status == 503 else None

            body = await until(dropping, limit_s=15)
            assert any(p.startswith("points are being dropped: ") and "(disk_full)" in p for p in body["problems"]), body
            filler.unlink()

            async def recovered() -> bool:
                status, body = await healthz(agent, http)
                return status == 200 and not any("dropped" in p for p in body["problems"])

            assert await until(recovered, limit_s=15)


def test_the_first_drops_of_a_cause_are_drops_right_now() -> None:
    """Caught by the real-process lifecycle test (seed 2, an outage longer than the spool): the first
    count a cause ever showed was taken as the baseline, not as drops, so the first seconds of a full
    spool, or a single burst of drops of a new cause, left /healthz `ok`. Counters start at 0."""
    watch = health.DropWatch()
    watch.update({}, 0.0)
    watch.update({"spool_full": 7}, 1.0)
    assert watch.dropping() == {"spool_full": 7}
    watch.update({"spool_full": 9, "queue_full": 3}, 2.0)
    assert watch.dropping() == {"spool_full": 9, "queue_full": 3}
    watch.update({"spool_full": 9, "queue_full": 3}, 3.0 + health.DROPPING_WINDOW_S)
    assert watch.dropping() == {}  # nothing new for the window: no longer dropping


def test_an_idle_alert_sink_is_never_stale_and_a_wait_counts_from_when_it_began() -> None:
    """Issue 23: an alert sink is offered every journey and step point and discards them; while a batch
    sat in its memory queue they counted as waiting, and a sink that never delivered (nothing was ever
    disrupted) was measured from the agent's start, so after five minutes /healthz said degraded at
    random. What waits for a network sink is its spool; the wait counts from when it began."""
    now = time.time()
    hour_old = {"started_s": now - 3600, "sink_stale_after_s": 300.0}

    def alert_sink(**counts: int) -> AgentStats:
        state = SinkState("alertmanager#1", "alertmanager", SinkStats(**counts), spool_max_bytes=16 * 2**20)
        return AgentStats(sinks=[state], **hour_old)  # type: ignore[arg-type]

    waits = health.WaitWatch()
    idle = alert_sink(queued=40)  # journey and step points on their way to be discarded
    waits.update(idle.sinks, now)
    assert health.stale_sinks(idle, now, waits) == []
    waiting = alert_sink(spooled=2)  # a disruption now, the receiver away: its records wait from here
    waits.update(waiting.sinks, now)
    assert health.stale_sinks(waiting, now + 299, waits) == []
    assert health.stale_sinks(waiting, now + 301, waits) == [
        "sink alertmanager#1 has delivered nothing for 301s (2 points waiting)"]
    waits.update(alert_sink().sinks, now + 302)  # delivered: nothing waits
    waits.update(waiting.sinks, now + 900)
    assert health.stale_sinks(waiting, now + 1000, waits) == []


def test_a_reload_that_gives_an_idle_agent_journeys_again_is_not_stuck() -> None:
    """Caught by the real-process lifecycle test (seed 31): an agent whose shard and regions left it no
    journey for half a minute was reloaded with one; /livez measured the time since the last run
    before the empty spell and answered 503 (stuck) until the new journey's first run: a restart,
    for nothing. A reload re-plans the schedule: its allowance counts from there."""
    stats = AgentStats(journeys_scheduled=[], runs_started=12, stuck_after_s=None, reloads=3)
    server = health.HealthServer(lambda: stats, None)  # type: ignore[arg-type]
    server._observe(stats)
    server.progress.at -= 30.0  # the last run started 30 s ago; nothing was scheduled since
    stats = AgentStats(journeys_scheduled=["j6"], runs_started=12, stuck_after_s=18.6, reloads=4)
    server._observe(stats)
    assert health.stuck(stats, server.progress) == ""
    server.progress.at -= 19.0  # and now the new journey has not run for longer than its allowance
    assert health.stuck(stats, server.progress).startswith("scheduler stuck: no run started or ended for 19")


def test_the_stuck_allowance_is_the_longest_a_run_may_take(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text("""\
version: 1
agent: {state_dir: state, listen: off}
journeys:
  - name: fast
    interval: 1s
    timeout: 500ms
    steps: [{name: a, http: {url: "http://127.0.0.1:1/"}}]
  - name: slow
    interval: 5m
    timeout: 10s
    retries: 2
    steps:
      - {name: a, http: {url: "http://127.0.0.1:1/"}}
      - {name: logout, always_run: true, timeout: 5s, http: {url: "http://127.0.0.1:1/"}}
""")
    agent = Agent(load_config(path, env={}), str(path))
    slow = agent.scheduler.journeys["slow"]
    assert longest_run_s(slow) == 3 * (10 + 5) + 2 * RETRY_PAUSE_S  # attempts, cleanups, pauses
    idle = agent.stuck_after_s(())
    assert idle is not None and 3.0 <= idle < 5.0  # the fast journey's: 3 intervals or interval + 0.5 s, + margin
    busy = agent.stuck_after_s(("slow",))  # a slow run in flight may hold the slot that long
    assert busy is not None and busy > longest_run_s(slow)
    assert agent.stuck_after_s(("fast",)) == idle
