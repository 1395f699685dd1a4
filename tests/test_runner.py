"""The runner: a journey run is one conversation, failures skip what follows, retries are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert first.run_id != second.run_id
    assert second.start_ms > first.start_ms
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


async def test_flaky_run_passes_on_retry_and_says_so(tmp_path: Path, demo_service: DemoService) -> None:
    cfg = config(tmp_path, demo_service.url)
    rule = demo_service.faults.add(FaultRule(path="/api/pay", status=503))
    runner = Runner(cfg)

    async def heal_after_first_attempt() -> None:
        demo_service.faults.remove(rule)

    try:
        first = await runner.run_once(journey(cfg, "pay"), attempt=1)
        await heal_after_first_attempt()
        second = await runner.run_once(journey(cfg, "pay"), attempt=2)
    finally:
        await runner.close()
    assert first.outcome is Outcome.FAILED and not first.flaky
    assert second.outcome is Outcome.PASSED and second.flaky
    assert result_points(second)[0].field("flaky") is True


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
