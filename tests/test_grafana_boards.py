"""The Grafana boards, tested query by query against a real influxd filled by real agents.

There is no Grafana here: the test reads the provisioned dashboard JSON, interpolates every panel,
annotation and template-variable query as Grafana would, runs it on influxd's /query and checks
that series with exactly the expected columns (and data in each) come back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from qos_agent.config.loader import load_config
from qos_agent.runloop import agent as agent_mod
from qos_agent.runloop.agent import Agent
from tests.support import demo as demo_support
from tests.support import grafana as g
from tests.support import influx as influx_support
from tests.support.influx import InfluxServer, make_exporter

demo_service = demo_support.demo_service
influxd = influx_support.influxd

BOARDS = {"journeys": "qos-journeys", "journey-drilldown": "qos-journey-drilldown", "agents": "qos-agents"}
INTERVAL = "1s"  # the test's data spans seconds; a 1 s bucket gives counters several buckets to differ in


def test_provisioning_files_agree_with_the_boards() -> None:
    ds = g.datasource()
    assert ds["uid"] == "qos-influxdb" and ds["type"] == "influxdb"
    assert ds["url"] == "${INFLUX_URL}"
    assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["dbName"] == "qos"
    [provider] = yaml.safe_load(g.PROVIDER_FILE.read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/qos"

    boards = g.dashboards()
    assert {name: b["uid"] for name, b in boards.items()} == BOARDS
    for name, board in boards.items():
        assert board["schemaVersion"] >= 36, name
        panels = list(g.walk_panels(board["panels"]))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids {ids}"
        assert all(p.get("description") for p in panels), f"{name}: every panel says what it answers"
        for p in panels:
            assert p["datasource"]["uid"] == ds["uid"], (name, p["title"])
            assert p["targets"], (name, p["title"])
            for t in p["targets"]:
                assert t["rawQuery"] is True and t["datasource"]["uid"] == ds["uid"], (name, p["title"])
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                assert v["datasource"]["uid"] == ds["uid"] and v["query"].startswith("SHOW TAG VALUES"), v
        for q in g.annotation_queries(board):
            assert q.datasource["uid"] == ds["uid"], q.where
        names = {v["name"] for v in board["templating"]["list"]}
        assert {"region", "agent"} <= names and (name == "agents" or "journey" in names), (name, names)


def test_interpolation_matches_grafana() -> None:
    q = 'SELECT x FROM "m" WHERE $timeFilter AND "journey" =~ /^$journey$/ GROUP BY time($__interval)'
    out = g.interpolate(q, {"journey": ["check.out", "b-2"]}, "10s")
    assert out == r'SELECT x FROM "m" WHERE time > now() - 1h AND "journey" =~ /^(check\.out|b-2)$/ GROUP BY time(10s)'
    assert g.select_columns('SELECT 100 * count("ok") / count("run") AS "pct", "reason" FROM (SELECT a FROM b)') \
        == ["pct", "reason"]


async def _fill(influxd: InfluxServer, demo: demo_support.DemoService, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> None:
    """Two agents (eu-west with a payment fault, us-east healthy) run, then the fault clears."""
    monkeypatch.setattr(agent_mod, "SELF_METRICS_EVERY_S", 0.4)
    demo.faults.add_spec(f"path=/api/pay,region={g.FAULTY_REGION},status=503")
    agents = []
    for region in (g.FAULTY_REGION, g.HEALTHY_REGION):
        path = tmp_path / f"{region}.yaml"
        path.write_text(g.journeys_yaml(tmp_path / region, region, demo.url, influxd.url))
        agents.append(Agent(load_config(path), str(path)))
    # us-east's cart answers slowly, and four times the agents' own event loop stalls (this test hogs
    # it, as a starved host would) while a cart step is in flight: those steps and runs are lagged.
    demo.faults.add_spec(f"path=/api/cart,region={g.HEALTHY_REGION},latency=250ms")
    # The agents run until what the boards need is there (bounded), not a fixed 6 s: on a busy machine
    # that sometimes ended before a stall had hit a step in flight or before the disruption closed.
    tasks = [asyncio.create_task(a.run(duration_s=60.0)) for a in agents]

    def rows(q: str) -> list[dict[str, Any]]:
        return influxd.rows(q, g.DB)

    async def lagged() -> int:
        found = await asyncio.to_thread(rows, """SELECT count("duration_ms") FROM "step" WHERE "lagged" = true
                                                 AND "journey" = 'checkout'""")
        return int(found[0]["count"]) if found else 0

    try:
        await asyncio.sleep(0.4)
        for stall in range(20):
            time.sleep(0.2)  # blocks the event loop on purpose: the stall is the point
            await asyncio.sleep(0.25)
            if stall >= 3 and await lagged():
                break
        # failed checkouts in eu-west: a disruption opens, /health stays green
        opened = await g.wait_rows(rows, """SELECT count("reason") FROM "disruption" WHERE "state" = 'open'""", 1)
        assert opened >= 1, "the eu-west disruption never opened"
        demo.faults.clear()       # then good runs close it
        closed = await g.wait_rows(rows, """SELECT count("reason") FROM "disruption" WHERE "state" = 'close'""", 1,
                                   limit_s=20)
        await g.wait_rows(rows, 'SELECT count("in_flight") FROM "agent"', 6)
    finally:
        for a in agents:
            a.stop_event.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

    exporter = make_exporter(tmp_path / "browser-agent", {"url": influxd.url, "database": g.DB})
    try:
        await exporter.write(g.catalogue_points(int(time.time() * 1000)))
    finally:
        await exporter.close()

    assert closed >= 1, "the eu-west disruption never closed"
    assert await g.wait_rows(rows, 'SELECT count("in_flight") FROM "agent"', 6) >= 6
    assert await g.wait_rows(rows, """SELECT count("fcp_ms") FROM "step" WHERE "probe" = 'browser'""", 3) >= 3


def _variables(board: dict[str, Any], influxd: InfluxServer) -> g.Variables:
    """Every template variable's values, in order, each query interpolated with those before it."""
    values: g.Variables = {}
    for v in board["templating"]["list"]:
        if v["type"] == "textbox":
            values[v["name"]] = str(v["query"])
            continue
        q = g.interpolate(v["query"], values)
        found = sorted(row["value"] for row in influxd.rows(q, g.DB))
        assert found, f"{board['uid']}: variable {v['name']} has no values: {q}"
        values[v["name"]] = found if v.get("multi") or v.get("includeAll") else found[:1]
    return values


def _check(query: g.Query, variables: g.Variables, influxd: InfluxServer) -> list[dict[str, Any]]:
    text = g.interpolate(query.text, variables, INTERVAL)
    assert "$" not in text.replace("$/", "").replace("^", ""), f"{query.where}: not interpolated: {text}"
    series = g.series_of(influxd.query(text, g.DB))
    assert series, f"{query.where}: no data for\n{text}"
    want = ["time", *g.select_columns(text)]
    for s in series:
        assert s["columns"] == want, f"{query.where}: columns {s['columns']} != {want}"
    for i, col in enumerate(want[1:], 1):
        assert any(row[i] is not None for s in series for row in s["values"]), f"{query.where}: {col} all null"
    return [{**s.get("tags", {}), **dict(zip(s["columns"], row, strict=True))} for s in series for row in s["values"]]


@pytest.mark.influx
@influx_support.needs_influxd
async def test_every_board_query_returns_data(influxd: InfluxServer, demo_service: demo_support.DemoService,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _fill(influxd, demo_service, tmp_path, monkeypatch)
    answers: dict[str, list[dict[str, Any]]] = {}
    checked = 0
    for board in g.dashboards().values():
        variables = await asyncio.to_thread(_variables, board, influxd)
        assert {"eu-west", "us-east"} <= set(variables["region"]), variables
        for q in [*g.panel_queries(board), *g.annotation_queries(board)]:
            answers[q.where] = await asyncio.to_thread(_check, q, variables, influxd)
            checked += 1
    assert checked >= 30

    def answer(prefix: str) -> list[dict[str, Any]]:
        [key] = [k for k in answers if k.startswith(prefix)]
        return answers[key]

    # What the boards show is what happened: eu-west's checkout broke, us-east's did not, and the
    # disruption was hidden from the uptime check.
    rate = answer("qos-journeys / panel 1 ")
    def of(rows: list[dict[str, Any]], region: str, col: str) -> list[float]:
        return [r[col] for r in rows if r["journey"] == "checkout" and r["region"] == region and r[col] is not None]

    assert min(of(rate, "eu-west", "success_pct")) == 0 and min(of(rate, "us-east", "success_pct")) == 100
    availability = answer("qos-journeys / panel 2 ")
    [eu_avail], [us_avail] = of(availability, "eu-west", "availability_pct"), of(availability, "us-east",
                                                                                  "availability_pct")
    assert 0 < eu_avail < 99.5 and us_avail == 100, (eu_avail, us_avail)
    assert [r["slo_margin_pct"] for r in availability if r["region"] == "us-east" and r["journey"] == "checkout"] \
        == [pytest.approx(0.5)]
    hidden = answer("qos-journeys / panel 5 ")
    assert any(r["region"] == "eu-west" and r["hidden_minutes"] > 0 for r in hidden), hidden
    failing = answer("qos-journeys / panel 3 ")
    assert max(r["failing_regions"] for r in failing if r["journey"] == "checkout") >= 1
    assert all(r["failing_regions"] <= r["regions"] for r in failing)
    lagged = answer("qos-journeys / panel 7 ")
    us = [r for r in lagged if r["journey"] == "checkout" and r["region"] == "us-east"]
    assert us and us[0]["lagged_runs"] >= 1 and 0 < us[0]["lagged_pct"] < 100, lagged
    lagged_steps = answer("qos-journey-drilldown / panel 10 ")
    assert any(r["region"] == "us-east" and r["lagged_steps"] >= 1 and r["worst_loop_lag_ms"] >= 50
               for r in lagged_steps), lagged_steps
    # The latency panels leave the lagged samples out (the lagged panels above found them in the data).
    boards = g.dashboards()
    for board, pid in (("journeys", 4), ("journey-drilldown", 1), ("journey-drilldown", 2)):
        [panel] = [p for p in g.walk_panels(boards[board]["panels"]) if p["id"] == pid]
        assert all('AND "lagged" = false' in t["query"] for t in panel["targets"]), (board, panel["title"])
    certs = answer("qos-journey-drilldown / panel 9 ")
    assert {(r["journey"], r["region"]) for r in certs} >= {("storefront_tls", "eu-west"), ("storefront_tls", "us-east")}
    assert all(89 < r["days_left"] <= 90 and r["subject"] == "qos-agent demo" for r in certs
               if r["journey"] == "storefront_tls"), certs
    failed_runs = answer("qos-journey-drilldown / panel 8 ")
    assert any(r["screenshot"] and r["trace"] for r in failed_runs)
    assert any(r["status_code"] == 503 and r["region"] == "eu-west" for r in failed_runs)
