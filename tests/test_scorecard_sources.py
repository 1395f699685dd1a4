"""The CX scorecard from every source agrees: two real agents in two regions write to their SQLite
stores and a real InfluxDB (Debian's influxd) and are scraped by a real Prometheus, while the demo's
checkout breaks in ap-south only (uptime stays green: a hidden disruption) and heals.

Then the agents are paused (a reload gives every journey an interval of 9000h, so no run straddles
the report's edge and Prometheus scrapes the final counters) and `qos-agent report` is read from
each source. Runs and success ratios agree exactly; disrupted and hidden minutes within one scrape
interval (plus one run interval: the counter moves with runs); InfluxDB's quantiles equal SQLite's
(nearest rank both ways), Prometheus' lie inside the histogram bucket of SQLite's value. Each names
checkout in ap-south as the disrupted journey and region.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qos_agent.reports import html, markdown
from qos_agent.reports.command import Options, read, timeline_window
from qos_agent.sinks.series import DURATION_BUCKETS
from tests.support.demo import CHECKOUT_STEPS, UPTIME_STEPS, DemoProcess
from tests.support.health import AgentProcess
from tests.support.influx import InfluxServer, needs_influxd
from tests.support.prometheus import PrometheusServer, needs_prometheus
from tests.support.waiting import wait_for

AGENT = """\
version: 1
agent: {{state_dir: state, interval: {interval}, name: agent-{region}, listen: "127.0.0.1:0"}}
defaults: {{disruption: {{open_after: 2, close_after: 3}}}}
variables: {{base: "{url}"}}
exporters:
  - type: sqlite
  - {{type: influxdb, url: "{influx}", database: qos, flush_interval: 200ms}}
journeys:
  - name: checkout
    owner: team-payments
    customer_reason: pay for an order
    weight: 2
    slo: {{success: 99.5%, latency: 2s}}
""" + CHECKOUT_STEPS + """  - name: uptime
    kind: uptime
""" + UPTIME_STEPS
REGIONS = ("eu-west", "ap-south")
SCRAPE_S = 1.0  # tests/support/prometheus.py scrapes every second
RUN_S = 0.5


def rows(card: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["journey"], r["region"]): r for r in card["rows"]}


def bucket_of(ms: float) -> int:
    return bisect.bisect_left(DURATION_BUCKETS, ms / 1000)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Influxd, one demo service, two agents (eu-west, ap-south) and a Prometheus scraping them."""
    influx = InfluxServer(tmp_path / "influxd")
    influx.root.mkdir()
    influx.start()
    agents: dict[str, AgentProcess] = {}
    prom: PrometheusServer | None = None
    try:
        with DemoProcess() as demo:
            for region in REGIONS:
                home = tmp_path / region
                home.mkdir()
                (home / "journeys.yaml").write_text(AGENT.format(region=region, url=demo.url, influx=influx.url,
                                                                 interval=f"{int(RUN_S * 1000)}ms"))
                agents[region] = AgentProcess(home / "journeys.yaml", "--region", region, cwd=home, start_timeout=60)
                agents[region].__enter__()
            prom = PrometheusServer(tmp_path / "prom", targets=[a.url.removeprefix("http://") for a in agents.values()])
            prom.root.mkdir()
            prom.start()
            yield {"demo": demo, "agents": agents, "prom": prom, "influx": influx, "home": tmp_path}
    finally:
        if prom is not None:
            prom.stop()
        for agent in agents.values():
            agent.stop()
        influx.stop()


def pause(agents: dict[str, AgentProcess]) -> None:
    """Reload every agent with a 9000h interval: no more runs, /metrics stays up with the final counters."""
    for agent in agents.values():
        agent.config.write_text(agent.config.read_text().replace("interval: 500ms", "interval: 9000h"))
        agent.hup()
    for agent in agents.values():
        wait_for(lambda a=agent: "reloaded" in a.log(), 60, "the reload with a 9000h interval")  # type: ignore[misc]


@needs_influxd
@needs_prometheus
def test_sqlite_influxdb_and_prometheus_scorecards_agree(world: dict[str, Any]) -> None:
    prom, agents, demo, home = world["prom"], world["agents"], world["demo"], world["home"]
    wait_for(lambda: len(prom.query('sum by (region) (qos_journey_runs_total{journey="checkout"}) > 2')) == 2,
             60, "both regions' checkout runs scraped")
    demo.add_faults(["path=/api/pay,region=ap-south,status=503"])  # checkout breaks there; /health stays 200
    wait_for(lambda: prom.query('qos_disruption_open{region="ap-south",journey="checkout"} == 1'), 30,
             "the disruption scraped")
    time.sleep(2.0)
    demo.clear_faults()
    wait_for(lambda: prom.query('qos_disruption_open{region="ap-south",journey="checkout"} == 0'), 30,
             "the disruption closed")
    pause(agents)
    dbs = [home / region / "state" / "qos-results.db" for region in REGIONS]
    journeys, nofile = home / "ap-south" / "journeys.yaml", home / "none.yaml"

    def settled() -> dict[str, dict[str, Any]] | None:
        now = int(time.time() * 1000)
        cards = {"sqlite": read(Options(file=journeys, dbs=dbs, since="1h"), now)[1].to_json(),
                 "influxdb": read(Options(file=journeys, source="influxdb", since="1h"), now)[1].to_json(),
                 # No file: the objectives come from the agents' qos_journey_slo_* gauges.
                 "prometheus": read(Options(file=nofile, source="prometheus", url=prom.url, since="1h"),
                                    now)[1].to_json()}
        runs = {name: {k: r["runs"] for k, r in rows(card).items()} for name, card in cards.items()}
        return cards if runs["sqlite"] == runs["influxdb"] == runs["prometheus"] else None

    cards = wait_for(settled, 30, "every source holding the same runs", every=1.0)
    sqlite, influx, promc = (rows(cards[n]) for n in ("sqlite", "influxdb", "prometheus"))
    assert set(sqlite) == {("checkout", "eu-west"), ("checkout", "ap-south")}
    for key, want in sqlite.items():
        for name, got in (("influxdb", influx[key]), ("prometheus", promc[key])):
            assert (got["runs"], got["success_ratio"]) == (want["runs"], want["success_ratio"]), (name, key)
            assert (got["owner"], got["customer_reason"], got["weight"]) == ("team-payments", "pay for an order", 2.0)
            assert got["slo_success"] == 0.995 and got["slo_latency_ms"] == 2000.0, (name, got)
        for field in ("p50_ms", "p95_ms", "p99_ms", "disrupted_minutes", "hidden_minutes", "customer_minutes",
                      "flaky_ratio", "error_budget_left"):
            assert influx[key][field] == want[field], (key, field)
        slack = (SCRAPE_S + RUN_S) / 60
        for field in ("disrupted_minutes", "hidden_minutes"):
            assert abs(promc[key][field] - want[field]) <= slack, (key, field, promc[key][field], want[field])
        for field in ("p50_ms", "p95_ms", "p99_ms"):
            assert bucket_of(promc[key][field]) == bucket_of(want[field]), (key, field, promc[key], want)
    ap, eu = sqlite[("checkout", "ap-south")], sqlite[("checkout", "eu-west")]
    assert ap["success_ratio"] < 1.0 and ap["disrupted_minutes"] > 0 and ap["hidden_minutes"] == ap["disrupted_minutes"]
    assert ap["customer_minutes"] == pytest.approx(2 * ap["disrupted_minutes"], abs=0.002)
    assert eu["success_ratio"] == 1.0 and eu["disrupted_minutes"] == 0
    for name, doc in cards.items():
        [journey] = doc["journeys"]
        assert journey["worst_region"] == "ap-south", name
        [reason] = doc["customer_reasons"]
        assert reason["worst"] == {"journey": "checkout", "region": "ap-south"}, name
        assert reason["met_objective"] is False and reason["owners"] == ["team-payments"], name

    # The summary in words and the page name it, from every source; the page draws the hidden band.
    now = int(time.time() * 1000)
    for options in (Options(file=journeys, dbs=dbs, since="1h"), Options(file=journeys, source="influxdb", since="1h"),
                    Options(file=nofile, source="prometheus", url=prom.url, since="1h")):
        source, card = read(options, now)
        assert "checkout in ap-south lost" in markdown.render(card) and "hidden from uptime" in markdown.render(card)
        first = min(r.first_run_ms or now for r in card.rows)
        frame, bucket = timeline_window(card, first)
        page = html.render_html(card, source.timeline(frame, bucket), source.disruptions(card.window))
        (home / f"{options.source}.html").write_text(page)
        assert 'data-journey="checkout" data-region="ap-south">' in page, options.source
        ap_card = page.split('data-journey="checkout" data-region="ap-south">')[1].split("</section>")[0]
        eu_card = page.split('data-journey="checkout" data-region="eu-west">')[1].split("</section>")[0]
        assert 'class="dis hidden"' in ap_card and 'class="fail"' in ap_card, options.source
        assert 'class="dis' not in eu_card and 'class="fail"' not in eu_card, options.source

    # The failed runs, each with the trace id the agent sent on the wire (issue 24): SQLite and InfluxDB
    # list the same runs and traces; every disruption names one of them; Prometheus keeps no runs.
    now = int(time.time() * 1000)
    sources = {o.source: read(o, now)[0] for o in (Options(file=journeys, dbs=dbs, since="1h"),
                                                   Options(file=journeys, source="influxdb", since="1h"),
                                                   Options(file=nofile, source="prometheus", url=prom.url, since="1h"))}
    window = read(Options(file=journeys, dbs=dbs, since="1h"), now)[1].window
    failed = {name: src.failed_runs(window, 50) for name, src in sources.items()}
    assert failed["prometheus"] is None and failed["sqlite"] and failed["sqlite"] == failed["influxdb"]
    assert all(len(r.trace_id) == 32 and r.region == "ap-south" and r.failed_step for r in failed["sqlite"])
    traces = {r.trace_id for r in failed["sqlite"]}
    for name in ("sqlite", "influxdb"):
        found = sources[name].disruptions(window)
        assert found and all(d.trace_id in traces and d.error == "status" for d in found), (name, found)


@needs_influxd
async def test_an_influxdb_v2_exporter_is_read_through_the_compatibility_api(tmp_path: Path) -> None:
    """`api: v2` reads its bucket with the token (`Authorization: Token`) through `/query`; influxd 1.x
    stands in for a 2.x here (the v1 API is what 2.x's compatibility endpoint speaks; no auth here)."""
    from exporters.influxdb.lineprotocol import encode_many
    from tests.support import scorecard as sc
    from tests.support.influx import _http

    now = int(time.time() * 1000) // 60_000 * 60_000
    points = sc.points_of(sc.runs(now - 2 * 3600_000, minutes=60))
    influx = InfluxServer(tmp_path / "influxd")
    influx.root.mkdir()
    influx.start()
    try:
        influx.query("CREATE DATABASE qos")
        status, body = _http("POST", f"{influx.url}/write?db=qos&precision=ms", "\n".join(encode_many(points)).encode())
        assert status == 204, body
        journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
        journeys.write_text(sc.JOURNEYS_YAML + f"exporters:\n  - {{type: influxdb, url: '{influx.url}', api: v2, "
                            "org: '-', bucket: qos, token: 't0ken'}\n")
        await sc.write(db, points)
        source, card = read(Options(file=journeys, source="influxdb", since="3h"), now)
        assert source.description == f"InfluxDB {influx.url} (bucket qos)"
        want = read(Options(file=journeys, dbs=[db], since="3h"), now)[1].to_json()
        got = card.to_json()
        for doc in (want, got):
            for key in ("source", "generated", "latency_quantiles"):
                doc.pop(key)
        assert got == want
    finally:
        influx.stop()
