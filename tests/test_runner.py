"""The runner: a journey run is one conversation, failures skip what follows, retries are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from qos_agent.config.loader import load_config
from qos_agent.delivery.points import result_points
from qos_agent.demo import FaultRule
from qos_agent.model import Config, ErrorClass, Outcome
from qos_agent.runloop.runner import Runner
from tests.support import demo as demo_support
from tests.support.demo import DemoService

demo_service = demo_support.demo_service

JOURNEYS = """\
version: 1
agent: {{state_dir: state, region: eu-west, name: a1}}
variables: {{base: "{url}"}}
defaults: {{timeout: 2s}}
journeys:
  - name: session
    description: the session cookie set by login is sent by later steps, without any header
    tags: {{team: shop}}
    steps:
      - name: login
        http: {{method: POST, url: "{{{{ base }}}}/api/login", json: {{user: demo, password: demo}}}}
        extract: {{token: {{json: "$.token"}}, sid: {{cookie: session}}}}
      - name: invoices
        http: {{url: "{{{{ base }}}}/api/invoices"}}
        expect: {{status: 200, json: {{"$[0].id": {{exists: true}}}}}}
        extract: {{first: {{json: "$[0].id"}}}}
      - name: invoice
        http: {{url: "{{{{ base }}}}/api/invoices/{{{{ first }}}}", headers: {{Authorization: "Bearer {{{{ token }}}}"}}}}
        expect: {{status: 200}}
  - name: pay
    retries: 2
    steps:
      - name: pay
        http: {{method: POST, url: "{{{{ base }}}}/api/pay", json: {{cart_id: c1, card: "4242 4242 4242 4242"}}}}
        expect: {{status: 200}}
      - name: receipt
        http: {{url: "{{{{ base }}}}/health"}}
      - name: logout
        always_run: true
        http: {{method: POST, url: "{{{{ base }}}}/api/logout"}}
  - name: slow
    timeout: 600ms
    slo: {{latency: 150ms}}
    steps:
      - name: wait
        http: {{url: "{{{{ base }}}}/delay?ms=300"}}
      - name: wait_more
        http: {{url: "{{{{ base }}}}/delay?ms=400"}}
      - name: never
        http: {{url: "{{{{ base }}}}/health"}}
  - name: degraded
    steps:
      - name: wait
        http: {{url: "{{{{ base }}}}/delay?ms=120"}}
        degraded_latency: 100ms
  - name: anonymous
    description: without a login, invoices are refused; a cookie left by another run would open them
    steps:
      - name: invoices
        http: {{url: "{{{{ base }}}}/api/invoices"}}
        expect: {{status: 401}}
  - name: cleanup
    timeout: 600ms
    steps:
      - name: wait
        http: {{url: "{{{{ base }}}}/delay?ms=1500"}}
        timeout: 2s
      - name: never
        http: {{url: "{{{{ base }}}}/health"}}
      - name: logout
        always_run: true
        timeout: 2s
        http: {{url: "{{{{ base }}}}/delay?ms=700"}}
"""


def config(tmp_path: Path, url: str) -> Config:
    path = tmp_path / "journeys.yaml"
    path.write_text(JOURNEYS.format(url=url))
    return load_config(path, env={})


def journey(cfg: Config, name: str):  # type: ignore[no-untyped-def]
    j = cfg.journey(name)
    assert j is not None
    return j


async def test_one_conversation_cookies_and_extracted_values(tmp_path: Path, demo_service: DemoService) -> None:
    cfg = config(tmp_path, demo_service.url)
    runner = Runner(cfg)
    try:
        (result,) = await runner.run(journey(cfg, "session"))
    finally:
        await runner.close()
    assert result.outcome is Outcome.PASSED, [(s.step, s.error_message) for s in result.steps]
    assert [s.outcome for s in result.steps] == [Outcome.PASSED] * 3
    assert result.steps[0].phases["connect_ms"] > 0
    assert result.steps[1].phases.get("connect_ms", 0) == 0  # the run's connection is reused
    assert (result.region, result.agent, result.tags) == ("eu-west", "a1", (("team", "shop"),))
    journey_point, *step_points = result_points(result)
    assert journey_point.tag("team") == "shop" and journey_point.field("steps") == 3
    assert [p.tag("step") for p in step_points] == ["login", "invoices", "invoice"]


async def test_each_run_has_its_own_cookie_jar(tmp_path: Path, demo_service: DemoService) -> None:
    cfg = config(tmp_path, demo_service.url)
    runner = Runner(cfg)
    try:
        first = await runner.run_once(journey(cfg, "session"))
        second = await runner.run_once(journey(cfg, "session"))
    finally:
        await runner.close()
    assert first.outcome is second.outcome is Outcome.PASSED
    sid1, sid2 = first.steps[0].extracted["sid"], second.steps[0].extracted["sid"]
    assert sid1 and sid2 and sid1 != sid2  # each run's login set its own session cookie in its own jar
    # A run after a logged-in one starts with an empty jar: the session cookie is not sent.
    runner = Runner(cfg)
    try:
        await runner.run_once(journey(cfg, "session"))
        anonymous = await runner.run_once(journey(cfg, "anonymous"))
    finally:
        await runner.close()
    assert anonymous.outcome is Outcome.PASSED, anonymous.steps[0].error_message  # 401: no cookie came along
    assert second.steps[0].phases["connect_ms"] > 0  # a fresh connection for every run


async def test_failure_skips_the_rest_but_always_run_runs_and_retries_are_recorded(
        tmp_path: Path, demo_service: DemoService) -> None:
    cfg = config(tmp_path, demo_service.url)
    demo_service.faults.add(FaultRule(path="/api/pay", status=503))
    runner = Runner(cfg)
    try:
        attempts = await runner.run(journey(cfg, "pay"))
    finally:
        await runner.close()
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert [a.final for a in attempts] == [False, False, True]
    last = attempts[-1]
    assert last.outcome is Outcome.FAILED and last.failed_step == "pay" and last.error is ErrorClass.STATUS
    assert [s.outcome for s in last.steps] == [Outcome.FAILED, Outcome.SKIPPED, Outcome.PASSED]
    assert len({a.start_ms for a in attempts}) == 3


async def test_flaky_run_passes_on_retry_and_says_so(tmp_path: Path) -> None:
    """Runner.run itself retries: a server that fails only the first /api/pay answers 200 on attempt 2."""
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        if request.path == "/api/pay" and calls.count("/api/pay") == 1:
            return web.Response(status=503, text="busy")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    app_runner = web.AppRunner(app)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]
    cfg = config(tmp_path, f"http://127.0.0.1:{port}")
    runner = Runner(cfg)
    try:
        attempts = await runner.run(journey(cfg, "pay"))
    finally:
        await runner.close()
        await app_runner.cleanup()
    first, second = attempts  # retries: 2, but the second attempt passed: no third
    assert first.outcome is Outcome.FAILED and not first.flaky and first.final is False
    assert second.outcome is Outcome.PASSED and second.flaky and second.final is True and second.attempt == 2
    assert calls.count("/api/pay") == 2
    assert result_points(second)[0].field("flaky") is True


async def test_journey_timeout_still_runs_always_run_steps(tmp_path: Path, demo_service: DemoService) -> None:
    """A logout runs after the journey timeout, bounded by its own step timeout (2 s here)."""
    cfg = config(tmp_path, demo_service.url)
    runner = Runner(cfg)
    try:
        (result,) = await runner.run(journey(cfg, "cleanup"))
    finally:
        await runner.close()
    outcomes = {s.step: s.outcome for s in result.steps}
    assert outcomes == {"wait": Outcome.FAILED, "never": Outcome.SKIPPED, "logout": Outcome.PASSED}
    assert "journey timeout" in result.steps[0].error_message
    assert result.steps[2].duration_ms >= 700  # it ran in full, past the journey's 600 ms


async def test_journey_timeout_fails_the_running_step_and_skips_the_rest(
        tmp_path: Path, demo_service: DemoService) -> None:
    cfg = config(tmp_path, demo_service.url)
    runner = Runner(cfg)
    try:
        (result,) = await runner.run(journey(cfg, "slow"))
    finally:
        await runner.close()
    assert result.outcome is Outcome.FAILED
    assert [s.outcome for s in result.steps] == [Outcome.PASSED, Outcome.FAILED, Outcome.SKIPPED]
    assert result.steps[1].error is ErrorClass.TIMEOUT
    assert "journey timeout" in result.steps[1].error_message
    assert result.duration_ms < 900


async def test_degraded_step_and_journey(tmp_path: Path, demo_service: DemoService) -> None:
    cfg = config(tmp_path, demo_service.url)
    runner = Runner(cfg)
    try:
        (result,) = await runner.run(journey(cfg, "degraded"))
    finally:
        await runner.close()
    assert result.steps[0].outcome is Outcome.DEGRADED
    assert result.outcome is Outcome.DEGRADED and result.outcome.ok


@pytest.mark.parametrize("bad_url", ["http://qos-agent-test.invalid/x", "http://127.0.0.1:9/x"])
async def test_bad_target_is_a_classified_result(tmp_path: Path, bad_url: str) -> None:
    cfg = config(tmp_path, bad_url.rsplit("/", 1)[0])
    runner = Runner(cfg)
    try:
        (result,) = await runner.run(journey(cfg, "degraded"))
    finally:
        await runner.close()
    assert result.outcome is Outcome.FAILED
    assert result.error in (ErrorClass.DNS, ErrorClass.CONNECT)
