"""The PromQL boards (grafana/prometheus/), tested query by query against a real Prometheus that
scraped two real agents (one region broken for a while, then healed).

There is no Grafana here: the test reads the provisioned JSON, interpolates every panel, annotation
and template-variable query as Grafana's Prometheus data source does ($__rate_interval, $__range,
multi-value variables as a regex `(a|b)`, All as its allValue `.*`), runs each on Prometheus' HTTP
API, and checks that data comes back.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.demo import CHECKOUT_STEPS, UPTIME_STEPS, DemoProcess
from tests.support.health import AgentProcess
from tests.support.influx import _http
from tests.support.prometheus import PrometheusServer, needs_prometheus
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
BOARDS_DIR = ROOT / "grafana" / "prometheus" / "dashboards"
DATASOURCE = ROOT / "grafana" / "prometheus" / "provisioning" / "datasources" / "qos-prometheus.yaml"
PROVIDER = ROOT / "grafana" / "prometheus" / "provisioning" / "dashboards" / "qos-prometheus.yaml"
RATE_INTERVAL = "4s"  # Grafana: max(4 x scrape interval, $__interval + scrape interval); scrapes are 1 s
RANGE = "5m"

AGENT = """\
version: 1
agent: {{state_dir: state, interval: 300ms, name: agent-{region}, listen: "127.0.0.1:0"}}
defaults: {{disruption: {{open_after: 2, close_after: 2}}}}
variables: {{base: "{url}"}}
journeys:
  - name: checkout
    tags: {{stage: purchase}}
    slo: {{success: 99.5%}}
""" + CHECKOUT_STEPS + """  - name: uptime
    kind: uptime
""" + UPTIME_STEPS


def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(BOARDS_DIR.glob("*.json"))}


def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


def interpolate(expr: str, variables: dict[str, list[str]]) -> str:
    """As Grafana's Prometheus data source: a multi-value variable is `(a|b)` regex-escaped, All is `.*`."""
    out = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)
    for name in sorted(variables, key=len, reverse=True):
        values = variables[name]
        if values == ["$__all"]:
            text = ".*"
        else:
            escaped = [re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", v) for v in values]
            text = escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        out = re.sub(r"\$" + re.escape(name) + r"\b", lambda _m, t=text: t, out)
    assert "$" not in out, f"uninterpolated variable in {out}"
    return out


def test_provisioning_files_agree_with_the_boards() -> None:
    [ds] = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    assert ds["uid"] == "qos-prometheus" and ds["type"] == "prometheus" and ds["url"] == "${PROMETHEUS_URL}"
    [provider] = yaml.safe_load(PROVIDER.read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/qos-prometheus"
    found = boards()
    assert {n: b["uid"] for n, b in found.items()} == {"journeys": "qos-prom-journeys", "agents": "qos-prom-agents",
                                                        "journey-drilldown": "qos-prom-journey-drilldown"}
    for name, board in found.items():
        panels = list(walk(board["panels"]))
        assert len({p["id"] for p in panels}) == len(panels), name
        for p in panels:
            assert p["description"] and p["targets"], (name, p["title"])
            assert p["datasource"]["uid"] == ds["uid"], (name, p["title"])
            assert all(t["datasource"]["uid"] == ds["uid"] and t["expr"] for t in p["targets"]), (name, p["title"])
        names = {v["name"] for v in board["templating"]["list"]}
        assert {"region", "agent"} <= names and (name == "agents" or "journey" in names), (name, names)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Two agents (eu-west broken for ~4 s then healed, us-east healthy) scraped every second."""
    tmp = tmp_path_factory.mktemp("prom-boards")
    with DemoProcess() as eu_service, DemoProcess() as us_service:
        agents: list[AgentProcess] = []
        try:
            for region, service in (("eu-west", eu_service), ("us-east", us_service)):
                home = tmp / region
                home.mkdir()
                (home / "journeys.yaml").write_text(AGENT.format(region=region, url=service.url))
                agents.append(AgentProcess(home / "journeys.yaml", "--region", region, cwd=home, start_timeout=60).__enter__())
            prom = PrometheusServer(tmp / "prom", targets=[a.url.removeprefix("http://") for a in agents])
            prom.root.mkdir()
            prom.start()
            try:
                wait_for(lambda: len(prom.query("qos_journey_runs_total > 0")) >= 4, 60, "both agents scraped")
                # us-east's agent stalls (SIGSTOP, as a starved host would) while its slow login is in
                # flight: those steps and runs come out lagged="true".
                us_service.add_faults(["path=/api/login,latency=250ms"])
                time.sleep(1)
                for _ in range(4):
                    agents[1].pause(0.3)
                    time.sleep(0.4)
                us_service.clear_faults()
                wait_for(lambda: prom.query('qos_journey_runs_total{region="us-east",lagged="true"} > 0'), 30,
                         "lagged runs in us-east")
                time.sleep(1)
                eu_service.add_faults(["path=/api/pay,status=503"])
                wait_for(lambda: prom.query('qos_disruption_open{region="eu-west"} == 1'), 60, "eu-west disrupted")
                time.sleep(4)
                eu_service.clear_faults()
                wait_for(lambda: prom.query('qos_disruption_hidden_seconds_total{region="eu-west"} > 0'), 30,
                         "the disruption closed with hidden time")
                time.sleep(2)
                yield prom
            finally:
                prom.stop()
        finally:
            for agent in agents:
                agent.stop()


SELECTIONS = {
    "all": {"journey": ["$__all"], "region": ["$__all"], "agent": ["$__all"], "step": ["$__all"]},
    "picked": {"journey": ["checkout"], "region": ["eu-west", "us-east"], "agent": ["agent-eu-west", "agent-us-east"],
               "step": ["login", "pay"]},
}


@needs_prometheus
@pytest.mark.parametrize("selection", sorted(SELECTIONS))
def test_every_panel_query_returns_data(prometheus: PrometheusServer, selection: str) -> None:
    variables = SELECTIONS[selection]
    end = time.time()
    checked = 0
    for name, board in boards().items():
        for p in walk(board["panels"]):
            for t in p["targets"]:
                expr = interpolate(t["expr"], variables)
                where = f"{name} / panel {p['id']} {p['title']!r} {t['refId']}: {expr}"
                if t.get("instant"):
                    result = prometheus.query(expr, at=end)
                    values = [float(r["value"][1]) for r in result]
                else:
                    result = prometheus.query_range(expr, end - 40, end, "1s")
                    values = [float(v) for r in result for _, v in r["values"]]
                assert result, f"no series: {where}"
                assert any(v == v for v in values), f"only NaN: {where}"  # NaN != NaN
                checked += 1
        for a in board["annotations"]["list"]:
            if a.get("datasource", {}).get("type") == "prometheus":
                result = prometheus.query_range(interpolate(a["expr"], variables), end - 60, end, "1s")
                assert result, f"{name} annotation {a['name']!r} found no disruption"
    assert checked >= 31


@needs_prometheus
def test_the_lagged_panels_count_the_stalled_agents_runs(prometheus: PrometheusServer) -> None:
    """us-east's agent was stalled while steps were in flight: the lagged panels count them there, the
    latency panels leave them out (their series carry lagged="false" only)."""
    board = boards()["journeys"]
    [panel] = [p for p in walk(board["panels"]) if p["title"] == "Runs lagged (agent's own delay)"]
    [count, share] = [interpolate(t["expr"], SELECTIONS["all"]) for t in panel["targets"]]
    lagged = {(r["metric"]["journey"], r["metric"]["region"]): float(r["value"][1]) for r in prometheus.query(count)}
    assert lagged[("checkout", "us-east")] > 0, lagged
    pct = {(r["metric"]["journey"], r["metric"]["region"]): float(r["value"][1]) for r in prometheus.query(share)}
    assert 0 < pct[("checkout", "us-east")] < 100, pct
    for name, title in (("journeys", "Latency p50 / p95 (on-time runs)"),
                        ("journey-drilldown", "Step duration p95 (on-time steps)")):
        [latency] = [p for p in walk(boards()[name]["panels"]) if p["title"] == title]
        assert all('lagged="false"' in t["expr"] for t in latency["targets"]), title
    [steps] = [p for p in walk(boards()["journey-drilldown"]["panels"]) if p["title"].startswith("Steps lagged")]
    end = time.time()
    rows = prometheus.query_range(interpolate(steps["targets"][0]["expr"], SELECTIONS["all"]), end - 120, end, "1s")
    assert any(float(v) > 0 for r in rows if r["metric"]["region"] == "us-east" for _, v in r["values"]), rows


@needs_prometheus
def test_template_variables_list_the_agents_labels(prometheus: PrometheusServer) -> None:
    expected = {"journey": {"checkout", "uptime"}, "region": {"eu-west", "us-east"},
                "agent": {"agent-eu-west", "agent-us-east"}, "step": {"login", "pay", "health"}}
    for name, board in boards().items():
        for v in board["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", v["query"]["query"])
            assert m, v
            match = interpolate(m.group(1), SELECTIONS["all"])
            status, body = _http("GET", f"{prometheus.url}/api/v1/label/{m.group(2)}/values?"
                                 + urllib.parse.urlencode({"match[]": match}))
            assert status == 200, body
            assert set(json.loads(body)["data"]) == expected[v["name"]], (name, v["name"])


# ---------------------------------------------------------------- how the panels read (issue 27)

INFLUX_JOURNEYS = ROOT / "grafana" / "dashboards" / "journeys.json"


def colour(value: float, defaults: dict[str, Any]) -> str:
    """The colour Grafana gives `value`: a value mapping's own colour first, else the thresholds' step."""
    for mapping in defaults.get("mappings", []):
        found = mapping["options"].get(f"{value:g}") if mapping["type"] == "value" else None
        if found and found.get("color"):
            return str(found["color"])
    steps = defaults["thresholds"]["steps"]
    chosen = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            chosen = step["color"]
    return str(chosen)


def shows(panel: dict[str, Any]) -> str | None:
    """What a panel shows, told by its queries: a success share, an outcome or up/down (1 is good), a
    disruption (1 is bad), the failing regions, or minutes hidden from uptime (0 is good); None: other."""
    exprs = " ".join(t["expr"] for t in panel["targets"])
    if 'outcome=~"passed|degraded"' in exprs:
        return "success %"
    if "qos_disruption_open" in exprs:
        return "disruption"
    if "qos_journey_success" in exprs and "== bool 0" in exprs:
        return "failing regions"
    if "qos_journey_success" in exprs or 'up{job="qos-agent"}' in exprs:
        return "outcome"
    if "qos_disruption_hidden_seconds_total" in exprs:
        return "hidden minutes"
    return None


def test_every_panel_of_success_outcome_or_disruption_reads_green_when_good_and_red_when_bad() -> None:
    influx = {p["title"]: p for p in json.loads(INFLUX_JOURNEYS.read_text())["panels"]}
    influx_steps = influx["Success rate per journey × region"]["fieldConfig"]["defaults"]["thresholds"]
    checked = {}
    for name, board in boards().items():
        for p in walk(board["panels"]):
            kind = shows(p)
            if kind is None:
                continue
            where = f"{name} / {p['title']}"
            defaults = p["fieldConfig"]["defaults"]
            assert defaults["color"] == {"mode": "thresholds"} and defaults["thresholds"]["mode"] == "absolute", where
            if kind == "success %":  # the InfluxQL boards' steps: green meets 99.5 %, orange from 99 %, red below
                assert defaults["thresholds"] == influx_steps and defaults["max"] == 100, where
                assert [colour(v, defaults) for v in (100, 99.6, 99.2, 98, 0)] == [
                    "green", "green", "orange", "red", "red"], where
            elif kind == "outcome":  # passed / up green, failed / down red, named
                assert [colour(v, defaults) for v in (1, 0)] == ["green", "red"], where
                texts = {k: v["text"] for m in defaults["mappings"] for k, v in m["options"].items()}
                assert set(texts) == {"0", "1"} and texts["0"] in ("failed", "down") and texts["1"] in ("passed", "up")
            elif kind == "disruption":  # open red (orange when uptime was green), closed green
                assert [colour(v, defaults) for v in (0, 1)] == ["green", "red"], where
                [hidden] = p["fieldConfig"]["overrides"]
                assert re.fullmatch(hidden["matcher"]["options"], "checkout · eu-west (hidden: true)"), where
                assert not re.fullmatch(hidden["matcher"]["options"], "checkout · eu-west (hidden: false)"), where
                [prop] = hidden["properties"]
                assert [colour(v, {**defaults, "mappings": prop["value"]}) for v in (0, 1)] == ["green", "orange"]
            else:  # failing regions, minutes hidden from uptime: none is good
                assert [colour(v, defaults) for v in (0, 1, 5)] == ["green", "red", "red"], where
                assert defaults["min"] == 0, where
            checked[where] = kind
    # The classification found every such panel (a new one is checked the day it is added).
    assert checked == {
        "journeys / Success rate per journey × region": "success %",
        "journeys / Availability against the SLO": "success %",
        "journeys / Failing in N of M regions": "failing regions",
        "journeys / Hidden-disruption minutes": "hidden minutes",
        "journeys / Disruptions": "disruption",
        "journey-drilldown / Last run per agent": "outcome",
        "agents / Scraped": "outcome",
    }, checked
    # The failing-regions stat's second number (how many regions run the journey) is a size, not a state.
    [failing] = [p for p in walk(boards()["journeys"]["panels"]) if p["title"] == "Failing in N of M regions"]
    [regions] = failing["fieldConfig"]["overrides"]
    assert regions["matcher"] == {"id": "byFrameRefID", "options": "B"}
    assert regions["properties"] == [{"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]


def test_latency_panels_show_exemplars() -> None:
    """Every latency quantile of a duration histogram asks Grafana for exemplars (the runs' trace ids)."""
    found = 0
    for board in boards().values():
        for p in walk(board["panels"]):
            for t in p["targets"]:
                if re.search(r"histogram_quantile\(.*qos_(journey|step)_duration_seconds_bucket", t["expr"]):
                    assert t.get("exemplar") is True, (p["title"], t["refId"])
                    found += 1
                else:
                    assert "exemplar" not in t, (p["title"], t["refId"])
    assert found == 3
