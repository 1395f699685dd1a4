"""/metrics as OpenMetrics (issue 24, item 4): negotiated on `Accept`, valid in both halves (the agent's
registry and the journey series) by prometheus_client's own OpenMetrics parser, with the trace ids of
real runs as exemplars on the duration buckets; the text format unchanged; a real Prometheus with
exemplar storage keeps them."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from qos_agent.model import Point
from qos_agent.ops.metrics import CONTENT_TYPE, AgentMetrics
from qos_agent.ops.openmetrics import wants_openmetrics
from qos_agent.ops.stats import AgentStats
from tests.support.demo import CHECKOUT_STEPS, DemoProcess
from tests.support.health import AgentProcess
from tests.support.influx import _http
from tests.support.prometheus import PrometheusServer, needs_prometheus
from tests.support.results import T0_MS, failed, journey, passed
from tests.support.waiting import wait_for

# What Prometheus 2.42 sends when it scrapes (scrape/scrape.go, acceptHeader).
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fed(trace_ids: tuple[str, str] = (TRACE, OTHER)) -> AgentMetrics:
    """The agent's whole /metrics (registry + journey series) after two runs and an open disruption."""
    metrics = AgentMetrics(lambda: AgentStats(agent="a1", region="eu-west", version="test"))
    first = journey("checkout", [passed("login", 40), passed("pay", 60)], agent="a1", trace_id=trace_ids[0])
    second = journey("checkout", [passed("login", 30), failed("pay", duration_ms=2000)], agent="a1",
                     start_ms=T0_MS + 5000, trace_id=trace_ids[1])
    opened = Point("disruption", (("agent", "a1"), ("journey", "checkout"), ("region", "eu-west"), ("state", "open")),
                   (("reason", "2 consecutive failed runs"), ("uptime_ok", True)), T0_MS + 5000)
    metrics.observe([first, second], [opened])
    return metrics


def exemplars(page: str) -> dict[tuple[str, str, str], tuple[str, float, float | None]]:
    """{(sample name, step, le): (trace id, value, timestamp s)} of every exemplar on an OpenMetrics page."""
    out = {}
    for family in parse_openmetrics(page):
        for s in family.samples:
            if s.exemplar is not None:
                ts = s.exemplar.timestamp
                when = None if ts is None else ts.sec + ts.nsec / 1e9
                key = (s.name, s.labels.get("step", ""), s.labels["le"])
                out[key] = (s.exemplar.labels["trace_id"], s.exemplar.value, when)
    return out


def test_the_accept_header_picks_the_format() -> None:
    assert wants_openmetrics(PROMETHEUS_ACCEPT)
    assert wants_openmetrics("application/openmetrics-text")
    assert wants_openmetrics("text/plain;q=0.5, Application/OpenMetrics-Text; version=1.0.0")
    for accept in ("", "*/*", "text/plain;version=0.0.4", "text/plain, application/openmetrics-text;q=0"):
        assert not wants_openmetrics(accept), accept


def test_the_openmetrics_page_parses_whole_with_exemplars_on_the_durations() -> None:
    page = fed().render(openmetrics=True).decode()
    assert page.endswith("# EOF\n") and page.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(page)}  # raises on anything OpenMetrics refuses
    assert {"qos_agent_info", "qos_agent_runs_started", "qos_journey_runs", "qos_journey_duration_seconds",
            "qos_step_duration_seconds", "qos_disruption_open", "qos_journey_slo_success_ratio"} <= set(families)
    assert families["qos_journey_runs"].type == "counter" and families["qos_step_phase_seconds"].type == "histogram"
    found = exemplars(page)
    # Each bucket keeps the trace of the latest run that fell into it.
    assert found[("qos_journey_duration_seconds_bucket", "", "0.1")] == (TRACE, 0.1, T0_MS / 1000)
    assert found[("qos_journey_duration_seconds_bucket", "", "2.5")] == (OTHER, 2.03, (T0_MS + 5000) / 1000)
    assert found[("qos_step_duration_seconds_bucket", "login", "0.05")] == (OTHER, 0.03, (T0_MS + 5000) / 1000)
    assert found[("qos_step_duration_seconds_bucket", "pay", "0.1")][0] == TRACE
    assert found[("qos_step_duration_seconds_bucket", "pay", "2.5")][0] == OTHER
    assert {name for name, _, _ in found} == {"qos_journey_duration_seconds_bucket", "qos_step_duration_seconds_bucket"}
    # The same samples as the text format, value for value.
    text = fed().render().decode()
    as_text = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in parse_text(text) for s in f.samples}
    as_om = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in parse_openmetrics(page) for s in f.samples}
    assert as_om == as_text and len(as_om) > 100


def test_the_text_format_carries_no_trace_id() -> None:
    """Byte for byte the same page whether or not the runs had trace ids: exemplars are OpenMetrics' only."""
    with_ids = fed().render()
    assert with_ids == fed(("", "")).render()
    assert TRACE.encode() not in with_ids and b"# EOF" not in with_ids


def test_a_run_without_a_trace_id_leaves_its_bucket_without_an_exemplar() -> None:
    page = fed((TRACE, "")).render(openmetrics=True).decode()
    found = exemplars(page)
    assert found[("qos_journey_duration_seconds_bucket", "", "0.1")][0] == TRACE
    assert ("qos_journey_duration_seconds_bucket", "", "2.5") not in found


AGENT = """\
version: 1
agent: {{state_dir: state, interval: 300ms, name: agent-eu, region: eu-west, listen: "127.0.0.1:0"}}
variables: {{base: "{url}"}}
exporters:
  - {{type: jsonl, path: points.jsonl}}
journeys:
  - name: checkout
""" + CHECKOUT_STEPS


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    home = tmp_path_factory.mktemp("openmetrics")
    with DemoProcess() as demo:
        (home / "journeys.yaml").write_text(AGENT.format(url=demo.url))
        with AgentProcess(home / "journeys.yaml", cwd=home, start_timeout=60) as running:
            yield running


def scrape(url: str, accept: str | None) -> tuple[str, str]:
    request = urllib.request.Request(url + "/metrics", headers={"Accept": accept} if accept is not None else {})
    with _NO_PROXY.open(request, timeout=5) as r:
        return r.headers["Content-Type"], r.read().decode()


def stored_trace_ids(agent: AgentProcess) -> set[str]:
    """The trace ids of the runs the agent wrote (the jsonl sink may not have flushed its first batch yet)."""
    path = agent.cwd / "state" / "points.jsonl"
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]  # a line being written: later
    return {json.loads(line)["fields"].get("trace_id", "") for line in lines} - {""}


def test_a_real_agent_negotiates_and_its_exemplars_are_its_runs_traces(agent: AgentProcess) -> None:
    def page_with_exemplars() -> tuple[str, str] | None:
        kind, page = scrape(agent.url, PROMETHEUS_ACCEPT)
        names = {name for name, _, _ in exemplars(page)}
        return (kind, page) if len(names) == 2 else None

    kind, page = wait_for(page_with_exemplars, limit_s=30, what="exemplars on both duration histograms")
    assert kind == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    found = exemplars(page)
    wait_for(lambda: {t for t, _, _ in found.values()} <= stored_trace_ids(agent), limit_s=10,
             what="the runs' points written")
    for (_name, _step, le), (trace_id, value, when) in found.items():
        assert len(trace_id) == 32 and int(trace_id, 16), trace_id
        assert le == "+Inf" or value <= float(le), (le, value)
        assert when is not None and abs(when - time.time()) < 120
    # Without the header (curl, a person) and with text/plain: the text format, no exemplar, no EOF.
    for accept in (None, "text/plain;version=0.0.4"):
        kind, text = scrape(agent.url, accept)
        assert kind == CONTENT_TYPE, accept
        assert "# EOF" not in text and " # {trace_id=" not in text
        assert "# TYPE qos_journey_runs_total counter" in text


@needs_prometheus
def test_prometheus_with_exemplar_storage_shows_the_runs_traces(agent: AgentProcess, tmp_path: Path) -> None:
    prom = PrometheusServer(tmp_path / "prom", targets=[agent.url.removeprefix("http://")],
                            flags=["--enable-feature=exemplar-storage"])
    prom.root.mkdir()
    prom.start()
    try:
        def stored() -> list[dict[str, Any]]:
            now = time.time()
            query = urllib.parse.urlencode({"query": 'qos_step_duration_seconds_bucket{step="pay"}',
                                            "start": f"{now - 300:.3f}", "end": f"{now + 5:.3f}"})
            status, body = _http("GET", f"{prom.url}/api/v1/query_exemplars?{query}")
            assert status == 200, body
            data: list[dict[str, Any]] = json.loads(body)["data"]
            return [e for series in data for e in series["exemplars"]]

        found = wait_for(stored, 30, "exemplars in Prometheus")
        traces = {e["labels"]["trace_id"] for e in found}
        wait_for(lambda: traces <= stored_trace_ids(agent), limit_s=10, what="the runs' points written")
        assert all(len(t) == 32 for t in traces)
    finally:
        prom.stop()
