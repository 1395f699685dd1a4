"""The journey series (issue 15's contract) from results: names, labels, final attempts only, tags as
labels, disruptions, objectives, series gone after a reload."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from qos_agent.config.loader import load_config
from qos_agent.model import ErrorClass, JourneyKind, Point
from qos_agent.ops.journey_metrics import JourneyMetrics
from qos_agent.quality.evaluator import Evaluator
from tests.support.demo import DemoProcess
from tests.support.health import AgentProcess, sample, samples, total
from tests.support.results import T0_MS, failed, journey, passed
from tests.support.waiting import wait_for

CONFIG = """\
version: 1
agent: {region: eu-west, name: a1}
journeys:
  - name: checkout
    slo: {success: 99.5%, latency: 2s}
    tags: {team: payments, "tier-1": gold}
    steps:
      - {name: login, http: {url: "http://127.0.0.1:1/login"}}
      - {name: pay, http: {url: "http://127.0.0.1:1/pay"}}
  - name: search
    steps:
      - {name: find, http: {url: "http://127.0.0.1:1/find"}}
"""
TAGS = (("team", "payments"), ("tier-1", "gold"))


def phases(**ms: float) -> dict[str, float]:
    return {f"{k}_ms": v for k, v in ms.items()}


def results() -> list:  # type: ignore[type-arg]
    ok = journey("checkout", [passed("login", 40, phases=phases(dns=1, connect=2, tls=5, ttfb=20, transfer=3)),
                              passed("pay", 60)], agent="a1", start_ms=T0_MS, tags=TAGS)
    retried = journey("checkout", [passed("login", 40), failed("pay", ErrorClass.STATUS, "HTTP 503 for /pay?card=1")],
                      agent="a1", start_ms=T0_MS + 1000, final=False, tags=TAGS, run_id="r2")
    flaky = journey("checkout", [passed("login", 40), passed("pay", 7000)], agent="a1", start_ms=T0_MS + 2000,
                    attempt=2, tags=TAGS, run_id="r2")
    # The agent's own event loop was late while pay was in flight: counted, but apart (lagged="true").
    lagged = journey("checkout", [passed("login", 40), passed("pay", 3000, loop_lag_ms=180.0, lagged=True)],
                     agent="a1", start_ms=T0_MS + 2500, tags=TAGS, loop_lag_ms=180.0, lagged=True)
    bad = journey("checkout", [passed("login", 30), failed("pay", ErrorClass.TIMEOUT, "timed out")], agent="a1",
                  start_ms=T0_MS + 3000, tags=TAGS)
    search = journey("search", [failed("find", ErrorClass.DNS, "no such host")], agent="a1", start_ms=T0_MS)
    return [ok, retried, flaky, lagged, bad, search]


def scrape(metrics: JourneyMetrics) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode()


def fed(tmp_path: Path) -> tuple[JourneyMetrics, list[Point]]:
    path = tmp_path / "journeys.yaml"
    path.write_text(CONFIG)
    config = load_config(path, env={})
    metrics = JourneyMetrics()
    metrics.configure(config.journeys, "eu-west", "a1")
    disruption = Point("disruption", (("agent", "a1"), ("journey", "checkout"), ("region", "eu-west"),
                                      ("state", "open")), (("reason", "2 consecutive failed runs"), ("uptime_ok", True)),
                       T0_MS + 3000)
    metrics.observe(results(), [disruption])
    return metrics, [disruption]


def test_the_contract_series_from_results(tmp_path: Path) -> None:
    metrics, _ = fed(tmp_path)
    text = scrape(metrics)
    c = {"journey": "checkout", "region": "eu-west", "agent": "a1"}
    tags = {"team": "payments", "tier_1": "gold"}  # sanitised (qos_agent/sinks/labels.py)
    on_time = {**c, "lagged": "false"}
    assert sample(text, "qos_journey_runs_total", **on_time, **tags, kind="journey", outcome="passed") == 2
    assert sample(text, "qos_journey_runs_total", **c, kind="journey", outcome="passed", lagged="true") == 1
    assert sample(text, "qos_journey_runs_total", **on_time, kind="journey", outcome="failed") == 1
    assert sample(text, "qos_journey_runs_total", **c, kind="journey", outcome="failed", lagged="true") == 0  # exists
    assert sample(text, "qos_journey_attempts_total", **on_time, outcome="failed") == 2  # the retried attempt counts
    assert sample(text, "qos_journey_attempts_total", **on_time, outcome="passed") == 2
    assert sample(text, "qos_journey_attempts_total", **c, outcome="passed", lagged="true") == 1
    assert sample(text, "qos_journey_duration_seconds_count", **on_time, kind="journey") == 3  # the retried: no
    assert sample(text, "qos_journey_duration_seconds_bucket", **on_time, kind="journey", le="0.005") == 0
    assert sample(text, "qos_journey_duration_seconds_bucket", **on_time, kind="journey", le="0.1") == 2  # 100, 80 ms
    assert sample(text, "qos_journey_duration_seconds_bucket", **on_time, kind="journey", le="60.0") == 3
    assert sample(text, "qos_journey_duration_seconds_bucket", **on_time, kind="journey", le="+Inf") == 3
    assert math.isclose(sample(text, "qos_journey_duration_seconds_sum", **on_time) or 0, 0.1 + 7.04 + 0.08)
    # The lagged run's 3.04 s is in its own series, out of every latency rule's way.
    assert sample(text, "qos_journey_duration_seconds_count", **c, lagged="true") == 1
    assert math.isclose(sample(text, "qos_journey_duration_seconds_sum", **c, lagged="true") or 0, 3.04)
    assert sample(text, "qos_journey_success", **c, kind="journey") == 0  # the last final run failed
    assert sample(text, "qos_journey_flaky_total", **c) == 1
    assert sample(text, "qos_step_duration_seconds_count", **on_time, step="pay", probe="http") == 3
    assert sample(text, "qos_step_duration_seconds_count", **c, step="pay", probe="http", lagged="true") == 1
    assert sample(text, "qos_step_duration_seconds_count", **c, step="login", probe="http", lagged="false") == 4
    # Never lagged, but the series exists at 0: increase() cannot see a series' first sample, so the
    # first lagged login would otherwise be missing from the boards' lagged panels.
    assert sample(text, "qos_step_duration_seconds_count", **c, step="login", probe="http", lagged="true") == 0
    assert sample(text, "qos_step_duration_seconds_sum", **c, step="login", probe="http", lagged="true") == 0
    assert sample(text, "qos_step_failures_total", **on_time, step="pay", probe="http", error="timeout") == 1
    assert sample(text, "qos_step_failures_total", **c, step="pay", error="status") is None  # a retried attempt
    assert sample(text, "qos_step_phase_seconds_count", **on_time, step="login", phase="tls") == 1
    assert sample(text, "qos_step_phase_seconds_sum", **on_time, step="login", phase="ttfb") == 0.02
    assert sample(text, "qos_step_failures_total", journey="search", step="find", error="dns") == 1
    assert sample(text, "qos_disruption_open", **c, hidden_from_uptime="true") == 1
    assert sample(text, "qos_disruption_hidden_seconds_total", **c) == 0
    assert sample(text, "qos_journey_slo_success_ratio", **c) == 0.995
    assert sample(text, "qos_journey_slo_latency_seconds", **c) == 2
    assert sample(text, "qos_journey_slo_success_ratio", journey="search") == 0.99
    # The journey's alert.severity (here the default) on its settings and its open disruption (rules.yml).
    assert sample(text, "qos_journey_alert_info", **c, severity="warning") == 1
    assert sample(text, "qos_disruption_open", **c, hidden_from_uptime="true", severity="warning") == 1
    # Never a URL, a message or an id as a label.
    for (_, labels), _value in samples(text).items():
        for name, value in labels:
            assert name not in ("url", "error_message", "run_id", "message"), name
            assert "/pay" not in value and "503" not in value and not value.startswith("run-"), (name, value)


def test_a_disruption_closes_and_counts_its_hidden_time(tmp_path: Path) -> None:
    metrics, [opened] = fed(tmp_path)
    close = Point("disruption", (*opened.tags[:3], ("state", "close")),
                  (("uptime_ok", True), ("hidden_minutes", 1.5)), T0_MS + 93_000)
    metrics.observe([], [close])
    text = scrape(metrics)
    c = {"journey": "checkout", "region": "eu-west", "agent": "a1"}
    assert sample(text, "qos_disruption_open", **c, hidden_from_uptime="true") == 0
    assert sample(text, "qos_disruption_hidden_seconds_total", **c) == 90
    # A disruption uptime monitoring caught after 30 s: those 30 s were still hidden.
    metrics.observe([], [Point("disruption", opened.tags, (("uptime_ok", True),), T0_MS + 100_000)])
    metrics.observe([], [Point("disruption", close.tags, (("uptime_ok", False), ("hidden_minutes", 0.5)),
                               T0_MS + 200_000)])
    text = scrape(metrics)
    assert sample(text, "qos_disruption_hidden_seconds_total", **c) == 120
    assert sample(text, "qos_disruption_open", **c, hidden_from_uptime="true") == 0


def test_a_reload_that_removes_a_journey_removes_its_series(tmp_path: Path) -> None:
    metrics, _ = fed(tmp_path)
    assert 'journey="search"' in scrape(metrics)
    path = tmp_path / "journeys.yaml"
    path.write_text(CONFIG.split("  - name: search")[0])
    metrics.configure(load_config(path, env={}).journeys, "eu-west", "a1")
    text = scrape(metrics)
    assert 'journey="search"' not in text and 'journey="checkout"' in text
    # A run of search still in flight at the reload ends after it (and a disruption point of its): its
    # series stay gone, instead of coming back until the next restart (seen under load on a real agent).
    late = journey("search", [failed("find", ErrorClass.DNS, "no such host")], agent="a1", start_ms=T0_MS + 5000)
    closed = Point("disruption", (("agent", "a1"), ("journey", "search"), ("region", "eu-west"), ("state", "closed")),
                   (("reason", "removed"),), T0_MS + 5000)
    metrics.observe([late], [closed])
    text = scrape(metrics)
    assert 'journey="search"' not in text and 'journey="search"' not in metrics.render().decode()


def test_the_fast_rendering_equals_prometheus_clients(tmp_path: Path) -> None:
    """`render` (what /metrics serves) parses to exactly the samples the prometheus_client collector gives."""
    metrics, _ = fed(tmp_path)
    fast = samples(metrics.render().decode())
    # prometheus_client writes a label a series lacks as "" (no label, to Prometheus): drop those.
    slow = {(n, tuple(kv for kv in ls if kv[1])): v for (n, ls), v in samples(scrape(metrics)).items()}
    assert fast == slow and len(fast) > 100
    text = metrics.render().decode()
    assert "# TYPE qos_journey_runs_total counter" in text and "# TYPE qos_step_phase_seconds histogram" in text


def test_a_sighup_that_removes_a_journey_removes_its_series_from_metrics(tmp_path: Path) -> None:
    head = ('version: 1\nagent: {{state_dir: state, interval: 300ms, name: a1, listen: "127.0.0.1:0"}}\n'
            'journeys:\n  - name: uptime\n    steps: [{{name: health, http: {{url: "{url}/health"}}}}]\n')
    tickets = '  - name: tickets\n    steps: [{{name: list, http: {{url: "{url}/health"}}}}]\n'
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        path.write_text((head + tickets).format(url=demo.url))
        with AgentProcess(path, cwd=tmp_path, start_timeout=60) as agent:
            wait_for(lambda: total(agent.metrics(), "qos_journey_runs_total", journey="tickets", outcome="passed"),
                     limit_s=30, what="tickets series")
            path.write_text(head.format(url=demo.url))
            agent.hup()
            wait_for(lambda: 'journey="tickets"' not in agent.metrics(), limit_s=30, what="tickets series gone")
            text = agent.metrics()
            assert total(text, "qos_journey_runs_total", journey="uptime", outcome="passed")
            assert sample(text, "qos_journey_slo_success_ratio", journey="tickets") is None
            assert agent.stop() == 0


HIDDEN_CONFIG = """\
version: 1
agent: {region: eu-west, name: a1}
defaults: {disruption: {open_after: 2, close_after: 3}}
journeys:
  - name: uptime
    kind: uptime
    steps: [{name: health, http: {url: "http://127.0.0.1:1/health"}}]
  - name: checkout
    steps: [{name: pay, http: {url: "http://127.0.0.1:1/pay"}}]
"""


def test_hidden_seconds_rise_while_the_hidden_disruption_is_open(tmp_path: Path) -> None:
    """Read at any moment, qos_disruption_hidden_seconds_total is the hidden time so far; it never falls."""
    path = tmp_path / "journeys.yaml"
    path.write_text(HIDDEN_CONFIG)
    config = load_config(path, env={})
    evaluator = Evaluator(config.journeys, "a1")
    metrics = JourneyMetrics()
    metrics.configure(config.journeys, "eu-west", "a1")
    metrics.hidden_now = evaluator.hidden_now
    c = {"journey": "checkout", "region": "eu-west", "agent": "a1"}

    def feed(at_s: float, ok: bool) -> None:
        runs = [journey("uptime", [passed("health")], agent="a1", kind=JourneyKind.UPTIME, start_ms=T0_MS + int(at_s * 1000)),
                journey("checkout", [passed("pay") if ok else failed("pay")], agent="a1",
                        start_ms=T0_MS + int(at_s * 1000))]
        metrics.observe(runs, evaluator.observe(runs))

    def hidden(at_s: float) -> float | None:
        return sample(metrics.render(T0_MS + int(at_s * 1000)).decode(), "qos_disruption_hidden_seconds_total", **c)

    feed(0, False)
    feed(10, False)  # the second failure opens it; uptime is green: hidden
    assert sample(metrics.render(T0_MS + 10_000).decode(), "qos_disruption_open", **c, hidden_from_uptime="true") == 1
    assert hidden(10) == 0
    assert hidden(40) == 30  # open, no run since: the 30 s so far already count
    assert hidden(70) == 60
    feed(80, False)
    assert hidden(85) == 75
    feed(90, True)
    feed(100, True)
    assert hidden(105) == 95
    assert hidden(115) == 105
    feed(110, True)  # the third good run closes it: 100 s hidden, fewer than the 105 s read at 115 s
    assert evaluator.open_disruptions() == []
    assert hidden(200) == 105  # a counter never falls: it holds until closed time passes what was shown
    # The next hidden disruption adds on top.
    feed(300, False)
    feed(310, False)
    # 100 closed (hidden_minutes has 3 decimals: 1.667 min = 100.02 s) + 20 open, past the 105 held
    assert hidden(330) == pytest.approx(120, abs=0.05)


def test_a_running_agent_shows_hidden_seconds_during_the_open_disruption(tmp_path: Path) -> None:
    config = ('version: 1\nagent: {{state_dir: state, interval: 200ms, name: a1, region: eu-west, '
              'listen: "127.0.0.1:0"}}\ndefaults: {{disruption: {{open_after: 2, close_after: 2}}}}\njourneys:\n'
              '  - name: uptime\n    kind: uptime\n    steps: [{{name: health, http: {{url: "{url}/health"}}}}]\n'
              '  - name: checkout\n    steps: [{{name: pay, http: {{method: POST, url: "{url}/api/pay", '
              'json: {{cart_id: c1, card: "4242 4242 4242 4242"}}}}, expect: {{status: 200}}}}]\n')
    path = tmp_path / "journeys.yaml"
    c = {"journey": "checkout", "region": "eu-west", "agent": "a1"}
    with DemoProcess() as demo:
        path.write_text(config.format(url=demo.url))
        with AgentProcess(path, cwd=tmp_path, start_timeout=60) as agent:
            wait_for(lambda: total(agent.metrics(), "qos_journey_runs_total", journey="uptime", outcome="passed"),
                     limit_s=30, what="uptime passing")
            demo.add_faults(["path=/api/pay,status=503"])
            wait_for(lambda: sample(agent.metrics(), "qos_disruption_open", **c, hidden_from_uptime="true") == 1,
                     limit_s=30, what="a hidden disruption open")
            first = sample(agent.metrics(), "qos_disruption_hidden_seconds_total", **c)
            time.sleep(1.5)
            text = agent.metrics()
            second = sample(text, "qos_disruption_hidden_seconds_total", **c)
            assert sample(text, "qos_disruption_open", **c, hidden_from_uptime="true") == 1  # still open
            assert first is not None and second is not None and 1.0 <= second - first <= 3.0, (first, second)
            demo.clear_faults()
            wait_for(lambda: sample(agent.metrics(), "qos_disruption_open", **c, hidden_from_uptime="true") == 0,
                     limit_s=30, what="the disruption closed")
            after = sample(agent.metrics(), "qos_disruption_hidden_seconds_total", **c)
            assert after is not None and after >= second
            assert agent.stop() == 0
