"""`qos-agent report --html`: the CX scorecard as one self-contained page, opened in real headless Chromium.

The store is written by the real SqliteExporter with two hours of runs in two regions, and the
disruptions come from the real Evaluator (tests/support/scorecard.py): eu-west's checkout breaks while
its /health stays green (a hidden disruption), us-east's checkout is slow for ten minutes (degraded
runs) and later breaks together with its uptime check (a visible one).

The page tells the truth (issue 27, item 5): degraded runs in their own colour, the success and
latency objectives drawn, a "0 ms" baseline, time labels that never repeat, every time in UTC.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from qos_agent.reports.charts import ticks
from qos_agent.reports.command import Options, run
from tests.support import scorecard as sc
from tests.support.components import needs

ROOT = Path(__file__).resolve().parents[1]
# The README's picture is refreshed only on request (QOS_UPDATE_SCREENSHOTS=1), so a test run
# never leaves the work tree changed.
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "scorecard.png"
CHROMIUM = Path("/usr/bin/chromium")
NOW_MS = int(time.time()) // 60 * 60_000  # recent: the store prunes what is older than its retention
START_MS = NOW_MS - 2 * 3600_000


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


async def scorecard_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four hours of runs: two quiet ones, then the story; the page shows the last two against the two before."""
    monkeypatch.chdir(tmp_path)  # the page names the store as given: qos-results.db
    db, page, journeys = Path("qos-results.db"), tmp_path / "report.html", tmp_path / "journeys.yaml"
    journeys.write_text(sc.JOURNEYS_YAML)
    await sc.store(db, START_MS - 2 * 3600_000, lead=120)
    code = run(Options(file=journeys, dbs=[db], since="2h", html=page), quiet(), quiet(), now_ms=NOW_MS)
    assert code == 0
    return page


async def test_the_page_is_the_scorecard_and_tells_the_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (await scorecard_page(tmp_path, monkeypatch)).read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text  # self-contained: nothing to fetch
    # The summary in words first, then a section per customer reason (the one that missed first).
    summary = text.split('<section class="summary">')[1].split("</section>")[0]
    assert "1 of 2 customer reasons missed their objective; checkout in eu-west lost 63 customer-minutes, 63 of them " \
           "hidden from uptime." in summary
    assert re.findall(r'<section class="reason (\w+)" data-reason="([^"]+)"', text) == [
        ("missed", "pay for an order"), ("met", "find a product")]
    pay = text.split('data-reason="pay for an order"')[1].split('data-reason="find a product"')[0]
    assert "owner: team-payments" in pay and "since the previous period: success -10.83 pp" in pay
    cards = re.findall(r'<section class="card" data-journey="([^"]+)" data-region="([^"]+)"', text)
    assert cards == [("checkout", "eu-west"), ("checkout", "us-east"), ("search", "eu-west"), ("search", "us-east")]
    eu, us = (text.split(f'data-journey="checkout" data-region="{r}">')[1].split("</section>")[0]
              for r in ("eu-west", "us-east"))
    assert 'class="dis hidden"' in eu and "1 hidden from uptime" in eu and 'class="degraded"' not in eu
    assert 'class="dis"' in us and 'class="up-bad"' in us and 'class="fail"' in us
    # Degraded runs (slower than slo.latency, still passed) in their own colour, never as "passed".
    assert len(re.findall(r'<rect class="degraded"', us)) >= 4 and "10 degraded" in us
    # Both objectives drawn; the latency axis starts at "0 ms"; no "p95" at the baseline.
    assert len(re.findall(r'<line class="target"', eu)) == 2
    assert ">objective</text>" in eu and ">99.5 %</text>" in eu and ">2000 ms</text>" in eu
    assert re.search(r'y="204">0 ms</text>', eu) and not re.search(r'y="204">p95</text>', eu)
    # Time labels: distinct, on whole steps, in UTC (the axis says so; every other time says UTC too).
    labels = re.findall(r'<text class="tick" text-anchor="\w+" x="[\d.]+" y="248">([^<]+)</text>', eu)
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert '<text class="tick utc"' in eu and ">UTC</text>" in eu
    stamps = re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?(?: UTC)?", text)
    assert stamps and all(s.endswith("UTC") for s in stamps), [s for s in stamps if not s.endswith("UTC")]
    assert "green — hidden from uptime" in text and "red (uptime saw it)" in text


async def test_failed_runs_and_disruptions_link_their_traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24: from the page to the backend's trace of a failed run, through agent.trace_url."""
    monkeypatch.chdir(tmp_path)
    db, page, journeys = Path("qos-results.db"), tmp_path / "report.html", tmp_path / "journeys.yaml"
    template = "https://tempo.example/explore?traceId={trace_id}"
    journeys.write_text(sc.JOURNEYS_YAML.replace("agent: {interval: 60s}",
                                                 'agent: {interval: 60s, trace_url: "' + template + '"}'))
    points = await sc.store(db, START_MS - 2 * 3600_000, lead=120)
    assert run(Options(file=journeys, dbs=[db], since="2h", html=page), quiet(), quiet(), now_ms=NOW_MS) == 0
    text = page.read_text()
    failed = [p for p in points if p.measurement == "journey" and dict(p.fields).get("success") is False
              and NOW_MS - 2 * 3600_000 <= p.time_ms < NOW_MS]
    failed.sort(key=lambda p: p.time_ms, reverse=True)
    section = text.split("<h2>Failed runs</h2>")[1].split("<h2>")[0]
    linked = re.findall(r'<a class="trace" href="https://tempo\.example/explore\?traceId=([0-9a-f]{32})">'
                        r"<code>\1</code></a>", section)
    assert linked == [dict(p.fields)["trace_id"] for p in failed][:50], "every failed run, newest first, linked"
    assert len(linked) == min(50, len(failed)) > 0
    # Each disruption names the last failed run before it opened, and links its trace.
    table = text.split("<h2>Disruptions</h2>")[1].split("<h2>")[0]
    # (A latency disruption, opened by slow runs that passed, has no failed run: "—".)
    traces = [dict(p.fields).get("trace_id") for p in points if p.measurement == "disruption"
              and p.tag("state") == "open" and p.tag("journey") == "checkout"]
    assert len([t for t in traces if t]) >= 2 and "" not in traces
    for trace in traces:
        if trace:
            assert f'href="https://tempo.example/explore?traceId={trace}"' in table
    assert "pay · status" in table
    # Without agent.trace_url the ids are shown, not linked; Prometheus keeps no runs: no section.
    journeys.write_text(sc.JOURNEYS_YAML)
    assert run(Options(file=journeys, dbs=[db], since="2h", html=page), quiet(), quiet(), now_ms=NOW_MS) == 0
    plain = page.read_text()
    assert 'class="trace" href' not in plain and f'<code class="trace">{linked[0]}</code>' in plain


def test_time_labels_never_repeat() -> None:
    t0 = 1_718_000_000_000  # 2024-06-10T06:13:20Z
    for span_s in (20, 90, 15 * 60, 2 * 3600, 26 * 3600, 7 * 86400, 31 * 86400, 92 * 86400, 400 * 86400):
        marks = ticks(t0, t0 + span_s * 1000)
        labels = [label for _, label in marks]
        assert 2 <= len(marks) <= 8 and len(set(labels)) == len(labels), (span_s, labels)
        steps = {b - a for (a, _), (b, _) in itertools.pairwise(marks)}
        assert len(steps) == 1, (span_s, marks)  # whole, even steps


async def test_a_period_without_runs_writes_an_honest_page(tmp_path: Path) -> None:
    db, journeys, page = tmp_path / "qos-results.db", tmp_path / "journeys.yaml", tmp_path / "empty.html"
    journeys.write_text(sc.JOURNEYS_YAML)
    await sc.store(db, START_MS, minutes=10)
    later = NOW_MS + 30 * 86400_000  # a month on: nothing in the last 7 days, nothing in the 7 before
    assert run(Options(file=journeys, dbs=[db], html=page), quiet(), quiet(), now_ms=later) == 1
    text = page.read_text()
    assert "No journey runs were recorded in this period" in text and "0.00 %" not in text
    assert "100.00 %" not in text and '<svg class="chart"' not in text


@pytest.mark.browser
@needs(CHROMIUM.exists(), "Debian chromium")
async def test_the_scorecard_renders_in_chromium_without_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    from playwright.async_api import async_playwright

    page_path = await scorecard_page(tmp_path, monkeypatch)
    screenshot = tmp_path / "scorecard.png"
    problems: list[str] = []
    requests: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            page = await browser.new_page(viewport={"width": 1040, "height": 1500})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(page_path.as_uri(), wait_until="load")
            charts = await page.eval_on_selector_all(
                "svg.chart", """svgs => svgs.map(s => ({
                    ok: s.querySelectorAll('rect.ok').length, degraded: s.querySelectorAll('rect.degraded').length,
                    fail: s.querySelectorAll('rect.fail').length, p95: s.querySelectorAll('path.p95').length,
                    targets: s.querySelectorAll('line.target').length, uptime: s.querySelectorAll('rect.up-ok').length,
                    hidden: s.querySelectorAll('rect.dis.hidden').length,
                    width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height}))""")
            hidden_box = await page.locator("section[data-region='eu-west'] rect.dis.hidden").first.bounding_box()
            headline = await page.locator(".summary .headline").inner_text()
            await page.screenshot(path=str(screenshot), full_page=False)
            if os.environ.get("QOS_UPDATE_SCREENSHOTS") == "1":
                shutil.copyfile(screenshot, DOCS_SCREENSHOT)
            pdf = await page.pdf(format="A4")  # printable: Chromium's own print-to-PDF
        finally:
            await browser.close()
    assert problems == []
    assert requests == [page_path.as_uri()]  # nothing but the page itself
    assert len(charts) == 4
    for c in charts:
        assert c["ok"] > 30 and c["p95"] == 1 and c["targets"] == 2 and c["uptime"] > 30, c
        assert c["width"] > 500 and c["height"] > 150, c
    assert [c["hidden"] for c in charts] == [1, 1, 0, 0]
    assert charts[1]["degraded"] >= 4 and charts[0]["degraded"] == 0 and charts[0]["fail"] > 0
    assert hidden_box is not None and hidden_box["width"] > 50  # 20 minutes of 2 hours: clearly visible
    assert "checkout in eu-west lost 63 customer-minutes" in headline
    assert 0 < screenshot.stat().st_size < 400_000 and pdf.startswith(b"%PDF")


async def test_report_html_option_of_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qos_agent.cli import app

    db, page, journeys = tmp_path / "qos-results.db", tmp_path / "out" / "report.html", tmp_path / "journeys.yaml"
    journeys.write_text(sc.JOURNEYS_YAML)
    await sc.store(db, int(time.time() * 1000) - 2 * 3600_000)
    result = CliRunner().invoke(app, ["report", "-f", str(journeys), "--db", str(db), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"wrote {page}" in result.output and page.read_text().count('<svg class="chart"') == 4
    missing = CliRunner().invoke(app, ["report", "--db", str(tmp_path / "none.db"), "--html", str(page)])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert f"no results yet in {tmp_path / 'none.db'}" in missing.output
