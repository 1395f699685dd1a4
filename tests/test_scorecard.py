"""The CX scorecard's arithmetic and its honesty, over real SQLite stores (tests/support/scorecard.py).

Periods are calendar periods in UTC; every figure without data is `null` (never 0 or 100 %); a
period with no data, a journey renamed mid-period and a region added mid-period read as what they
are; bad input is one line and exit code 2.
"""

from __future__ import annotations

import io
import math
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from qos_agent.cli import app
from qos_agent.reports import markdown, terminal
from qos_agent.reports.command import Options, read, run
from qos_agent.reports.errors import ReportError
from qos_agent.reports.figures import histogram_quantile, nearest_rank, rank
from qos_agent.reports.indicators import error_budget_left
from qos_agent.reports.period import choose, since_seconds
from tests.support import results as rb
from tests.support import scorecard as sc

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
NOW = int(datetime(2024, 6, 12, 15, 30, tzinfo=UTC).timestamp() * 1000)  # a Wednesday
CONTRACT = {"journey", "region", "owner", "customer_reason", "weight", "runs", "success_ratio", "slo_success",
            "error_budget_left", "p50_ms", "p95_ms", "p99_ms", "slo_latency_ms", "disrupted_minutes",
            "customer_minutes", "hidden_minutes", "flaky_ratio", "coverage", "trend"}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def scorecard(journeys: Path, dbs: list[Path], now: int, **kw: Any) -> dict[str, Any]:
    return read(Options(file=journeys, dbs=dbs, **kw), now)[1].to_json()


def rows(card: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["journey"], r["region"]): r for r in card["rows"]}


def test_periods_are_calendar_periods_in_utc() -> None:
    week, before = choose(None, "week", NOW)
    assert (week.from_ms, week.to_ms, week.label) == (ms("2024-06-03"), ms("2024-06-10"), "week of 2024-06-03")
    assert (before.from_ms, before.to_ms) == (ms("2024-05-27"), ms("2024-06-03"))
    month, before = choose(None, "month", NOW)
    assert (month.from_ms, month.to_ms, month.label) == (ms("2024-05-01"), ms("2024-06-01"), "2024-05")
    assert (before.from_ms, before.to_ms) == (ms("2024-04-01"), ms("2024-05-01"))
    quarter, before = choose(None, "quarter", NOW)
    assert (quarter.from_ms, quarter.to_ms, quarter.label) == (ms("2024-01-01"), ms("2024-04-01"), "2024-Q1")
    assert (before.from_ms, before.to_ms) == (ms("2023-10-01"), ms("2024-01-01"))
    # Run on Monday 00:00 exactly, the last whole week is the one that just ended.
    assert choose(None, "week", ms("2024-06-10"))[0].from_ms == ms("2024-06-03")
    since, before = choose("36h", None, NOW)
    assert (since.from_ms, since.to_ms, before.from_ms) == (NOW - 36 * HOUR, NOW, NOW - 72 * HOUR)
    assert choose(None, None, NOW)[0].from_ms == NOW - 7 * DAY  # the default: the last 7 days
    assert [since_seconds(t) for t in ("90m", "24h", "7d", "2w", "1.5h")] == [5400, 86400, 604800, 1209600, 5400]
    for bad in ("7 days", "-1d", "0s", "401d", "soon", ""):
        with pytest.raises(ReportError, match="is not a duration"):
            since_seconds(bad)
    with pytest.raises(ReportError, match="not both"):
        choose("7d", "week", NOW)
    with pytest.raises(ReportError, match="is not one of week, month, quarter"):
        choose(None, "year", NOW)


def test_quantiles_and_budget() -> None:
    assert [rank(20, p) for p in (50, 95, 99)] == [10, 19, 20]
    assert [rank(1, p) for p in (50, 95, 99)] == [1, 1, 1]
    values = [float(v) for v in range(1, 101)]
    assert [nearest_rank(values, p) for p in (50, 95, 99)] == [50.0, 95.0, 99.0]
    assert nearest_rank([], 50) is None
    # Prometheus' arithmetic: 10 in (0, 0.1], 10 in (0.1, 0.25], none above.
    buckets = [(0.1, 10.0), (0.25, 20.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.1 + 0.15 * 0.9)
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 5.0)]) == 0.1  # in +Inf: the highest finite bound
    assert error_budget_left(0.999, 0.995) == pytest.approx(0.8)
    assert error_budget_left(0.98, 0.995) == 0.0  # overspent reads 0, never negative
    assert error_budget_left(None, 0.995) is None and error_budget_left(0.98, None) is None
    assert (error_budget_left(1.0, 1.0), error_budget_left(0.99, 1.0)) == (1.0, 0.0)


async def test_the_json_shape_and_the_figures(tmp_path: Path) -> None:
    journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
    journeys.write_text(sc.JOURNEYS_YAML)
    await sc.store(db, NOW - 2 * HOUR)
    card = scorecard(journeys, [db], NOW, since="2h")
    assert set(card) >= {"period", "rows", "journeys", "customer_reasons"}
    assert card["period"] == {"from": "2024-06-12T13:30:00Z", "to": "2024-06-12T15:30:00Z", "label": "last 2h"}
    for row in card["rows"]:
        assert set(row) >= CONTRACT, CONTRACT - set(row)
    found = rows(card)
    assert set(found) == {("checkout", "eu-west"), ("checkout", "us-east"), ("search", "eu-west"), ("search", "us-east")}
    eu = found[("checkout", "eu-west")]
    assert (eu["runs"], eu["success_ratio"], eu["slo_success"], eu["error_budget_left"]) == (120, 0.833333, 0.995, 0.0)
    assert (eu["owner"], eu["customer_reason"], eu["weight"]) == ("team-payments", "pay for an order", 3.0)
    assert (eu["disrupted_minutes"], eu["hidden_minutes"], eu["customer_minutes"]) == (21.0, 21.0, 63.0)
    assert eu["coverage"] == 1.0 and eu["trend"] is None and eu["met_objective"] is False
    us = found[("checkout", "us-east")]
    assert us["degraded_runs"] == 10 and us["p95_ms"] > us["slo_latency_ms"] == 2000.0
    assert 0 < us["hidden_minutes"] < us["disrupted_minutes"]  # the outage uptime saw is not hidden
    [checkout, search] = card["journeys"]
    assert checkout["worst_region"] == "eu-west" and checkout["regions"] == ["eu-west", "us-east"]
    assert checkout["runs"] == 240 and checkout["customer_minutes"] == eu["customer_minutes"] + us["customer_minutes"]
    assert search["met_objective"] is True and search["customer_minutes"] == 0
    [pay, find] = card["customer_reasons"]
    assert (pay["customer_reason"], pay["met_objective"], pay["journeys_missed"]) == ("pay for an order", False, 1)
    assert pay["worst"] == {"journey": "checkout", "region": "eu-west"} and pay["owners"] == ["team-payments"]
    assert (find["customer_reason"], find["met_objective"]) == ("find a product", True)
    assert card["uptime"] == [{"journey": "uptime", "region": "eu-west", "runs": 120, "success_ratio": 1.0},
                              {"journey": "uptime", "region": "us-east", "runs": 120, "success_ratio": 0.95}]


async def test_the_terminal_table_never_folds_a_journeys_name(tmp_path: Path) -> None:
    """Every column where the terminal is wide enough; in a 120-column CI log the page's compact columns,
    each journey and region on one line (the full 18 columns folded names letter by letter there)."""
    journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
    journeys.write_text(sc.JOURNEYS_YAML)
    await sc.store(db, NOW - 2 * HOUR)
    card = read(Options(file=journeys, dbs=[db], since="2h"), NOW)[1]
    for width, full in ((250, True), (120, False)):
        out = io.StringIO()
        terminal.render(card, None, Console(file=out, width=width, color_system=None))
        text = out.getvalue()
        assert ("p99 ms" in text and "Δ p95 ms" in text) is full, text
        assert (" / 1000" in text) is not full, text  # compact: "p95 / objective" in one cell
        assert max(map(len, text.splitlines())) <= width
        body = text.split("Journeys × regions")[1]
        for journey, region in (("checkout", "eu-west"), ("search", "us-east")):
            assert any(journey in line and region in line for line in body.splitlines()), text



async def test_customer_reasons_read_whole_at_any_width(tmp_path: Path) -> None:
    """The customer-reasons table where it fits; in a 120- or 80-column terminal (where its 11 columns
    folded every cell letter by letter, `make demo-run` showed it) a line of words per reason instead,
    with the same figures: the verdict, success, customer-minutes, the worst journey and region."""
    journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
    journeys.write_text(sc.JOURNEYS_YAML)
    await sc.store(db, NOW - 2 * HOUR)
    card = read(Options(file=journeys, dbs=[db], since="2h"), NOW)[1]
    for width, table in ((250, True), (120, False), (80, False)):
        out = io.StringIO()
        terminal.render(card, None, Console(file=out, width=width, color_system=None))
        text = out.getvalue()
        reasons = text.split("Customer reasons")[1].split("Journeys × regions")[0]
        assert max(map(len, text.splitlines())) <= width
        assert ("Δ customer-min" in reasons) is table, text
        flat = " ".join(line.strip(" │") for line in reasons.splitlines())
        if table:
            assert any("pay for an order" in line and "team-payments" in line and "MISSED" in line
                       for line in reasons.splitlines()), text
        else:
            assert re.search(r"· pay for an order: MISSED \(1 of 1 journeys\) — success 89\.17 % in 240 runs; "
                             r"117 customer-minutes \(82 % hidden from uptime\)", flat), text
            assert "worst checkout in eu-west" in flat and "owners team-payments" in flat, text
            assert "· find a product: met" in flat, text


async def test_a_period_with_no_data_says_so(tmp_path: Path) -> None:
    journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
    journeys.write_text(sc.JOURNEYS_YAML)
    await sc.store(db, NOW - 2 * HOUR, minutes=60)  # runs 2h..1h ago; the report asks for the last hour
    card = scorecard(journeys, [db], NOW, since="1h")
    assert len(card["rows"]) == 4
    for row in card["rows"]:
        assert row["runs"] == 0 and row["trend"]["runs"] == 60 and row["coverage"] == 0.0  # it ran before, not now
        for field in ("success_ratio", "error_budget_left", "p50_ms", "p95_ms", "p99_ms", "disrupted_minutes",
                      "customer_minutes", "hidden_minutes", "hidden_share", "flaky_ratio", "met_objective"):
            assert row[field] is None, (row["journey"], field)
    assert "No journey runs were recorded in this period" in _markdown(journeys, db, "1h")
    empty = scorecard(journeys, [db], NOW + 400 * DAY, period="quarter")  # nothing then, nothing before
    assert empty["rows"] == [] and [j["runs"] for j in empty["journeys"]] == [0, 0]
    assert all(j["success_ratio"] is None and j["met_objective"] is None for j in empty["journeys"])
    out = io.StringIO()
    code = run(Options(file=journeys, dbs=[db], since="1h", format="markdown"), Console(file=out), Console(file=out),
               now_ms=NOW)
    assert code == 1  # no runs in the period: the scorecard says so, and the exit code too


async def test_a_journey_renamed_mid_period(tmp_path: Path) -> None:
    """`checkout` became `checkout-v2` halfway: two rows, each honest about the half it covers."""
    journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
    journeys.write_text(sc.JOURNEYS_YAML.replace("name: checkout", "name: checkout-v2"))
    results = []
    for minute in range(120):
        name = "checkout" if minute < 60 else "checkout-v2"
        ok = not (name == "checkout-v2" and minute % 20 == 0)  # the new one fails now and then
        results.append(rb.journey(name, [rb.passed("pay", 300.0) if ok else rb.failed("pay")],
                                  region="eu-west", agent="agent-eu-west", start_ms=NOW - 2 * HOUR + minute * MIN,
                                  tags=sc.CHECKOUT_TAGS))
    await sc.write(db, sc.points_of(results))
    card = scorecard(journeys, [db], NOW, since="2h")
    old, new = rows(card)[("checkout", "eu-west")], rows(card)[("checkout-v2", "eu-west")]
    assert (old["runs"], old["success_ratio"], old["configured"], old["coverage"]) == (60, 1.0, False, None)
    assert old["slo_success"] is None and old["met_objective"] is None  # its objective is unknown now: not invented
    assert (new["runs"], new["success_ratio"], new["configured"], new["coverage"]) == (60, 0.95, True, 0.5)
    assert old["last_run"] < new["first_run"]
    text = _markdown(journeys, db, "2h")
    assert "checkout is not in the journeys file any more: its last run was 2024-06-12 14:29 UTC (renamed or removed?)" \
        in text
    assert "100.00 %" in text and not re.search(r"(?<![\d.])0\.00 %", text)  # the old half passed; no 0 %
    assert "search: no runs in this period" in text


async def test_a_region_added_mid_period(tmp_path: Path) -> None:
    """ap-south joined for the last of four hours: coverage says a quarter, the trend says nothing."""
    journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
    journeys.write_text(sc.JOURNEYS_YAML)
    results = []
    for minute in range(8 * 60):  # the previous 4 hours in eu-west only, then 4 hours
        regions = ["eu-west"] + (["ap-south"] if minute >= 7 * 60 else [])
        for region in regions:
            results.append(rb.journey("checkout", [rb.passed("pay", 300.0)], region=region, agent=f"agent-{region}",
                                      start_ms=NOW - 8 * HOUR + minute * MIN, tags=sc.CHECKOUT_TAGS))
    await sc.write(db, sc.points_of(results))
    card = scorecard(journeys, [db], NOW, since="4h")
    eu, ap = rows(card)[("checkout", "eu-west")], rows(card)[("checkout", "ap-south")]
    assert (eu["coverage"], eu["trend"]["runs"]) == (1.0, 240)
    assert (ap["runs"], ap["coverage"], ap["trend"], ap["success_ratio"]) == (60, 0.25, None, 1.0)
    [checkout] = [j for j in card["journeys"] if j["journey"] == "checkout"]
    assert checkout["coverage"] == pytest.approx(300 / 480) and checkout["trend"]["runs"] == 240
    assert "checkout in ap-south started reporting on 2024-06-12 14:30 UTC (a new region): coverage 25 %" \
        in _markdown(journeys, db, "4h")


def _markdown(journeys: Path, db: Path, since: str) -> str:
    return markdown.render(read(Options(file=journeys, dbs=[db], since=since), NOW)[1])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "a week"], "--since 'a week' is not a duration up to 400d"),
    (["--since", "7d", "--period", "week"], "give --since or --period, not both"),
    (["--period", "fortnight"], "--period 'fortnight' is not one of week, month, quarter"),
    (["--source", "graphite"], "--source 'graphite' is not one of sqlite, influxdb, prometheus"),
    (["--source", "prometheus"], "--source prometheus needs --url"),
    (["--source", "prometheus", "--url", "prometheus:9090"], "is not an http(s) URL of Prometheus"),
    (["--source", "prometheus", "--url", "http://user:secret@127.0.0.1:{port}"],
     "cannot reach Prometheus at http://user:***@127.0.0.1:{port}: [Errno 111] Connection refused"),
    (["--source", "influxdb"], "has no influxdb exporter to read"),
    (["--db", "{tmp}/none.db"], "no results yet in {tmp}/none.db — run `qos-agent run` first"),
    (["--format", "csv"], "--format 'csv' is not one of table, json, markdown"),
    (["--url", "http://127.0.0.1:1"], "--url is for --source influxdb or prometheus"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    journeys = tmp_path / "journeys.yaml"
    journeys.write_text(sc.JOURNEYS_YAML)
    port = _closed_port()
    args = [a.format(port=port, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, ["report", "-f", str(journeys), *args])
    assert result.exit_code == 2, result.output
    assert message.format(port=port, tmp=tmp_path) in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert "secret" not in result.output


async def test_influxdb_settings_come_from_the_file(tmp_path: Path) -> None:
    """An unreachable InfluxDB is one line naming it; a variable it needs and lacks is a located error."""
    journeys = tmp_path / "journeys.yaml"
    port = _closed_port()
    journeys.write_text(sc.JOURNEYS_YAML + f"exporters:\n  - {{type: influxdb, url: 'http://127.0.0.1:{port}', "
                        "api: v2, org: o, bucket: qos, token: '${QOS_TEST_UNSET_TOKEN}'}\n")
    result = CliRunner().invoke(app, ["report", "-f", str(journeys), "--source", "influxdb"])
    assert result.exit_code == 2
    assert f"{journeys}:20:90: environment variable QOS_TEST_UNSET_TOKEN is not set (the influxdb exporter needs " \
           "it)" in result.output
    result = CliRunner(env={"QOS_TEST_UNSET_TOKEN": "t0ken"}).invoke(
        app, ["report", "-f", str(journeys), "--source", "influxdb"])
    assert result.exit_code == 2 and f"cannot reach InfluxDB at http://127.0.0.1:{port}" in result.output
    assert "t0ken" not in result.output


def test_the_weekly_delivery_examples_use_real_options() -> None:
    """docs/scorecard.md's cron line, CronJob and CI job: each `report` invocation parses with the real CLI."""
    import shlex

    import yaml
    from typer.main import get_command

    doc = (Path(__file__).resolve().parents[1] / "docs" / "scorecard.md").read_text()
    command = get_command(app).commands["report"]  # type: ignore[attr-defined]
    invocations = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", doc, re.S):
        if "kind: CronJob" in block:
            [container] = yaml.safe_load(block)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            invocations.append([str(a) for a in container["args"]])
        for line in re.findall(r"qos-agent (report [^>\n]*(?:\n\s+--[^>\n]*)?)", block):
            if "[" not in line:  # not the synopsis
                shell = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", line.replace("\n", " "))  # $(date +%F): one word
                invocations.append(shlex.split(shell))
    assert len(invocations) == 3, invocations
    for args in invocations:
        assert args[0] == "report", args
        command.make_context("report", args[1:])  # an unknown option or a bad value raises
        assert "--period" in args and "week" in args, args
