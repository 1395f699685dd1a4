"""The `prometheus_remote_write` sink: its config's located errors, the wire format, the answers'
classes, and a real Prometheus receiving a real agent's journeys (matching its SQLite store exactly),
through a 30 s outage, and refusing too-old samples (dead letter, counted, the rest delivered)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from exporters.prometheus.config import RemoteWriteSpec
from exporters.prometheus.proto import compress, decode, decompress, encode_series, label_bytes, timeseries_entry
from exporters.prometheus.remote_write import PrometheusRemoteWriteSink
from qos_agent.config.loader import load_config
from qos_agent.delivery.durable import DurableSink
from qos_agent.delivery.points import points_of
from qos_agent.demo.faults import parse_fault_spec
from qos_agent.errors import ConfigError
from qos_agent.model import ErrorClass
from qos_agent.ops.journey_metrics import JourneyMetrics
from qos_agent.plugins.sinks import ExporterEnv, SinkStats
from qos_agent.runloop.agent import Agent
from tests.support import demo as demo_support
from tests.support.demo import CHECKOUT_STEPS, UPTIME_STEPS
from tests.support.health import samples
from tests.support.prometheus import PrometheusServer, needs_prometheus
from tests.support.results import T0_MS, failed, journey, passed
from tests.support.waiting import until
from tests.test_journey_metrics import fed, results, scrape

demo_service = demo_support.demo_service


def config_problems(tmp_path: Path, exporter: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "journeys.yaml"
    path.write_text(f"version: 1\nexporters:\n{exporter}journeys:\n  - name: j\n    steps:\n"
                    "      - {name: s, http: {url: 'http://127.0.0.1:1/'}}\n")
    try:
        load_config(path, env=env or {})
    except ConfigError as e:
        return str(e)
    return ""


def test_config_is_read_and_mistakes_are_located(tmp_path: Path) -> None:
    ok = ("  - type: prometheus_remote_write\n    url: http://127.0.0.1:9090/api/v1/write\n"
          "    bearer_token: ${TOKEN}\n    headers: {X-Scope-OrgID: t1}\n    external_labels: {cluster: c1}\n")
    assert config_problems(tmp_path, ok, {"TOKEN": "s3cret"}) == ""
    config = load_config(tmp_path / "journeys.yaml", env={"TOKEN": "s3cret"})
    spec = config.exporters[0].spec
    assert isinstance(spec, RemoteWriteSpec)
    assert spec.bearer_token == "s3cret" and "s3cret" in config.secrets
    assert spec.external_labels == (("cluster", "c1"),) and spec.headers == (("X-Scope-OrgID", "t1"),)
    assert spec.name.startswith("prometheus-rw-")
    bad = ("  - type: prometheus_remote_write\n    url: ftp://x\n    bearer_token: t\n"
           "    basic_auth: {username: u, password: p}\n    external_labels: {le: x, 0bad: y}\n"
           "    headers: {Authorization: x}\n")
    text = config_problems(tmp_path, bad)
    path = str(tmp_path / "journeys.yaml")
    for line, what in ((4, "'url' is not an http(s) URL"), (5, "either 'bearer_token' or 'basic_auth'"),
                       (7, "external label 'le'"), (7, "external label '0bad'"), (8, "header 'Authorization'")):
        assert f"{path}:{line}:" in text and what in text, (line, what, text)
    assert config_problems(tmp_path, "  - type: prometheus_remote_write\n") != ""  # url is required


def test_the_wire_format_round_trips() -> None:
    body = encode_series([((("__name__", "x_total"), ("a", "b")), [(1.5, 1000), (2.5, 2000)])])
    assert decompress(compress(body)) == body
    twice = decode(body + body)  # records concatenate into one WriteRequest
    assert twice == [((("__name__", "x_total"), ("a", "b")), [(1.5, 1000), (2.5, 2000)])] * 2


def test_remote_write_carries_the_scrape_samples_at_the_run_time(tmp_path: Path) -> None:
    """The sink's last sample of every series equals the scrape's value; timestamps are the runs'."""
    metrics, disruptions = fed(tmp_path)
    # An empty label in the text format is no label to Prometheus (a journey without the others' tags).
    scraped = {(n, tuple(kv for kv in ls if kv[1])): v for (n, ls), v in samples(scrape(metrics)).items()}
    spec = RemoteWriteSpec(url="http://127.0.0.1:1/api/v1/write", name="t", external_labels=(("cluster", "c1"),))
    sink = PrometheusRemoteWriteSink(spec, ExporterEnv(tmp_path, "eu-west", "a1"))
    assert sink.delivery().parallel == 1
    records = sink.encode([*points_of(results()), *disruptions])
    last: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, int]] = {}
    for record in records:
        for labels, points in decode(base64.b64decode(record)):
            assert list(labels) == sorted(labels)  # the spec: labels sorted by name
            d = dict(labels)
            assert d.pop("cluster") == "c1"
            name = d.pop("__name__")
            for value, ts in points:
                key = (name, tuple(sorted(d.items())))
                assert key not in last or last[key][1] < ts  # strictly increasing within a series
                assert T0_MS <= ts <= T0_MS + 4000
                last[key] = (value, ts)
    # The journey's settings (objectives, alert severity) are /metrics only: the sink sees points.
    journey_series = {k: v for k, v in scraped.items()
                      if not k[0].startswith("qos_journey_slo_") and k[0] != "qos_journey_alert_info"}
    assert {k: v for k, (v, _) in last.items()} == journey_series
    assert isinstance(metrics, JourneyMetrics)


# ------------------------------------------------------------------ a real Prometheus

AGENT = """\
version: 1
agent: {{state_dir: state, region: eu-west, name: rw1, listen: off}}
defaults: {{disruption: {{open_after: 2, close_after: 2}}}}
variables: {{base: "{url}"}}
exporters:
  - type: sqlite
  - type: prometheus_remote_write
    url: {prom}/api/v1/write
    flush_interval: 200ms
    external_labels: {{cluster: test}}
journeys:
  - name: checkout
    interval: 250ms
    retries: 1
""" + CHECKOUT_STEPS + """  - name: uptime
    kind: uptime
    interval: 250ms
""" + UPTIME_STEPS


def store_counts(db: Path) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str, str]], Counter[str]]:
    """From the agent's SQLite store: final runs by (journey, outcome), failed steps of final runs by
    (journey, step, error), final runs by journey."""
    with sqlite3.connect(db) as conn:
        runs = Counter((j, o) for j, o in conn.execute(
            "SELECT journey, outcome FROM points WHERE measurement = 'journey' AND final = 1"))
        final_ids = {(r, a) for r, a in conn.execute(
            "SELECT run_id, attempt FROM points WHERE measurement = 'journey' AND final = 1")}
        steps: Counter[tuple[str, str, str]] = Counter()
        for tags, fields in conn.execute("SELECT tags, fields FROM points WHERE measurement = 'step'"):
            t, f = json.loads(tags), json.loads(fields)
            if f.get("error") and (f["run_id"], f["attempt"]) in final_ids:
                steps[(t["journey"], t["step"], f["error"])] += 1
    per_journey: Counter[str] = Counter()
    for (j, _), n in runs.items():
        per_journey[j] += n
    return runs, steps, per_journey


@needs_prometheus
@pytest.mark.slow
async def test_a_real_agent_into_a_real_prometheus_through_a_30s_outage(
        tmp_path: Path, demo_service: demo_support.DemoService) -> None:
    prom = PrometheusServer(tmp_path / "prom")
    prom.root.mkdir()
    await asyncio.to_thread(prom.start)
    path = tmp_path / "journeys.yaml"
    path.write_text(AGENT.format(url=demo_service.url, prom=prom.url))
    agent = Agent(load_config(path, env={}), str(path))
    task = asyncio.create_task(agent.run(handle_signals=False))

    def rw() -> SinkStats:
        return next(s.stats for s in agent.pipeline.snapshot() if s.type == "prometheus_remote_write")

    try:
        await until(lambda: rw().delivered > 0, 20, "first delivery")
        demo_service.faults.add(parse_fault_spec("path=/api/pay,status=503"))  # failures, a disruption
        await asyncio.sleep(2)
        await asyncio.to_thread(prom.stop)  # the outage: 30 s of runs go to the spool only
        down_at = rw().delivered
        await asyncio.sleep(15)
        demo_service.faults.clear()
        await asyncio.sleep(15)
        assert rw().delivered == down_at and rw().spooled > 0 and rw().failed_sends > 0
        await asyncio.to_thread(prom.start)  # same port, same TSDB
        await until(lambda: rw().spooled == 0 and rw().delivered > down_at, 60, "the backlog delivered")
    finally:
        agent.stop_event.set()
        await asyncio.wait_for(task, 60)
    try:
        final = rw()
        assert final.dead_lettered == 0 and final.dropped == 0 and final.spooled == 0
        runs, steps, per_journey = store_counts(tmp_path / "state" / "qos-results.db")
        assert runs[("checkout", "failed")] > 0 and runs[("checkout", "passed")] > 0

        def prom_values(expr: str, *keys: str) -> dict[tuple[str, ...], float]:
            out = {}
            for r in prom.query(expr):
                assert r["metric"]["cluster"] == "test" and r["metric"]["agent"] == "rw1"
                out[tuple(r["metric"][k] for k in keys)] = float(r["value"][1])
            return out

        got_runs = prom_values("sum by (journey, outcome, cluster, agent) (last_over_time(qos_journey_runs_total[1h]))",
                               "journey", "outcome")  # lagged="true" and "false" added up
        assert got_runs == {k: float(v) for k, v in runs.items()} | {
            k: 0.0 for k in {(j, o) for j in per_journey for o in ("passed", "failed")} - set(runs)}
        got_steps = prom_values("sum by (journey, step, error, cluster, agent) (last_over_time(qos_step_failures_total[1h]))",
                                "journey", "step", "error")
        assert got_steps == {k: float(v) for k, v in steps.items()}
        # One sample per final run, outage or not: nothing lost, nothing twice. Raw samples: a series
        # made at zero (the `lagged` value no run of the journey had yet) adds its first 0, not a run.
        got_samples: Counter[tuple[str, ...]] = Counter()
        for r in prom.query("qos_journey_duration_seconds_count[1h]"):
            assert r["metric"]["cluster"] == "test" and r["metric"]["agent"] == "rw1"
            values = [float(v) for _, v in r["values"]]
            assert values.count(0.0) <= 1 and values == sorted(values), r["metric"]  # a counter: 0 first, once
            got_samples[(r["metric"]["journey"],)] += sum(1 for v in values if v > 0)
        assert got_samples == {(j,): n for j, n in per_journey.items()}
        opened = prom_values("max_over_time(qos_disruption_open[1h])", "journey", "hidden_from_uptime")
        assert opened == {("checkout", "true"): 1.0}
    finally:
        await asyncio.to_thread(prom.stop)


@needs_prometheus
async def test_samples_too_old_for_the_head_are_dead_lettered_and_the_rest_delivered(tmp_path: Path) -> None:
    prom = PrometheusServer(tmp_path / "prom")
    prom.root.mkdir()
    await asyncio.to_thread(prom.start)
    now = int(time.time() * 1000)
    sink = PrometheusRemoteWriteSink(RemoteWriteSpec(url=prom.url + "/api/v1/write", name="old"),
                                     ExporterEnv(tmp_path, "eu-west", "a1"))
    durable = DurableSink(sink, tmp_path)
    durable.with_options(backoff_base_s=0.05, backoff_cap_s=0.2)
    try:
        fresh = [journey("fresh", [passed("s")], start_ms=now - 1000 + i) for i in range(5)]
        await durable.write(points_of(fresh))
        await until(lambda: durable.stats().delivered > 0 and durable.stats().spooled == 0, 20, "fresh delivered")
        # Two hours old (an outage longer than the head block's one-hour window), then new again.
        old = [journey("late", [failed("s", ErrorClass.STATUS)], start_ms=now - 7_200_000 + i) for i in range(3)]
        newer = [journey("fresh", [passed("s")], start_ms=now + i) for i in range(4)]
        await durable.write(points_of(old) + points_of(newer))
        await until(lambda: durable.stats().spooled == 0, 30, "the batch settled")
        stats = durable.stats()
        dead = await durable.dead_letters()
        assert stats.dead_lettered == len(dead) == 6  # 3 journey + 3 step points of the late runs
        assert all("out of bounds" in msg for _, msg in dead)
        assert stats.dropped == 0
        assert prom.query('qos_journey_runs_total{journey="fresh",outcome="passed",lagged="false"}')[0]["value"][1] == "9"
        assert prom.query('qos_journey_runs_total{journey="late"}') == []
    finally:
        await durable.close()
        await asyncio.to_thread(prom.stop)


@pytest.mark.parametrize("value,time_ms", [(1.5, 1_700_000_000_123), (0.0, 1_700_000_000_123), (3.0, 0),
                                           (float("inf"), 1), (2.0, -5)])
def test_the_hot_path_framing_is_byte_identical_to_protobufs(value: float, time_ms: int) -> None:
    labels = (("__name__", "qos_journey_runs_total"), ("journey", "checkout"), ("région", "ünïcode"))
    assert timeseries_entry(label_bytes(labels), value, time_ms) == encode_series([(labels, [(value, time_ms)])])


def test_external_labels_never_override_a_series_own_label(tmp_path: Path) -> None:
    """docs/prometheus.md: `external_labels` are added to every series, never overriding one of its own."""
    spec = RemoteWriteSpec(url="http://127.0.0.1:1/api/v1/write", name="t",
                           external_labels=(("region", "elsewhere"), ("cluster", "c1")))
    sink = PrometheusRemoteWriteSink(spec, ExporterEnv(tmp_path, "eu-west", "a1"))
    series = [dict(labels) for record in sink.encode(points_of(results()))
              for labels, _ in decode(base64.b64decode(record))]
    assert series and all(s["cluster"] == "c1" for s in series)
    assert {s["region"] for s in series if "region" in s} == {"eu-west"}  # the points' own region wins
