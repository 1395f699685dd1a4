"""`qos-agent report --html`: a self-contained page, opened in real headless Chromium.

The store is written by the real SqliteExporter with two hours of runs in two regions, and the
disruptions come from the real Evaluator: eu-west's checkout breaks while its /health stays green
(a hidden disruption), later us-east breaks together with its uptime check (a visible one).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from pathlib import Path

import pytest

from exporters.files.config import SqliteSpec
from exporters.files.sqlite import SqliteExporter
from qos_agent.delivery.points import result_points
from qos_agent.model import ErrorClass, Journey, JourneyKind, JourneyResult, Location, Point, Slo
from qos_agent.quality.evaluator import Evaluator
from qos_agent.reports.html import load_runs, write_html_report
from qos_agent.reports.table import ReportError
from tests.support import results as rb
from tests.support.components import needs

ROOT = Path(__file__).resolve().parents[1]
# The README's picture is refreshed only on request (QOS_UPDATE_SCREENSHOTS=1), so a test run
# never leaves the work tree changed.
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "html-report.png"
CHROMIUM = Path("/usr/bin/chromium")
LOC = Location("journeys.yaml", 1, 1)
NOW_MS = int(time.time()) // 60 * 60_000  # recent: the store prunes what is older than its retention
START_MS = NOW_MS - 2 * 3600_000
ORIGIN = ("https://shop.example:443",)  # the uptime check watches the checkout's service
CHECKOUT = Journey("checkout", (), 60.0, LOC, slo=Slo(success=0.995, latency_s=2.0), origins=ORIGIN)
UPTIME = Journey("uptime", (), 60.0, LOC, kind=JourneyKind.UPTIME, origins=ORIGIN)


def _runs(rng: random.Random) -> list[JourneyResult]:
    out = []
    for minute in range(120):
        for offset_s, region in ((7, "eu-west"), (23, "us-east")):
            t = START_MS + minute * 60_000 + offset_s * 1000
            hidden_fault = region == "eu-west" and 50 <= minute < 70  # checkout broken, /health green
            outage = region == "us-east" and 95 <= minute < 101      # everything down, uptime sees it
            out.append(rb.journey("uptime", [rb.failed("health", ErrorClass.CONNECT, "refused")] if outage
                                  else [rb.passed("health", rng.uniform(8, 20))],
                                  kind=JourneyKind.UPTIME, region=region, agent=f"agent-{region}", start_ms=t))
            pay = (rb.failed("pay", ErrorClass.STATUS, "HTTP 503", status_code=503) if hidden_fault or outage
                   else rb.passed("pay", rng.uniform(250, 420) + (300 if region == "us-east" else 0)))
            out.append(rb.journey("checkout", [rb.passed("login", rng.uniform(60, 120)),
                                               rb.passed("cart", rng.uniform(40, 90)), pay],
                                  region=region, agent=f"agent-{region}", start_ms=t + 1000,
                                  tags=(("stage", "purchase"),)))
    return out


async def _store(path: Path) -> None:
    results = _runs(random.Random(11))
    evaluator = Evaluator([CHECKOUT, UPTIME], "agent")
    points: list[Point] = []
    for r in results:
        points += result_points(r)
        points += evaluator.observe([r])
    exporter = SqliteExporter(SqliteSpec(path))
    try:
        await exporter.write(points)
    finally:
        await exporter.close()


async def test_page_shows_the_hidden_disruption(tmp_path: Path) -> None:
    db, page = tmp_path / "qos-results.db", tmp_path / "report.html"
    await _store(db)
    write_html_report(db, page, now_ms=NOW_MS)
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text  # self-contained: nothing to fetch
    cards = re.findall(r'<section class="card" data-journey="([^"]+)" data-region="([^"]+)"', text)
    assert cards == [("checkout", "eu-west"), ("checkout", "us-east")]
    eu, us = text.split('data-region="eu-west"')[1].split('data-region="us-east"')
    assert 'class="dis hidden"' in eu and "hidden from uptime" in eu
    assert 'class="dis"' in us and 'class="dis hidden"' not in us and 'class="up-bad"' in us
    assert "green — hidden from uptime" in text and "red (uptime saw it)" in text
    assert len(load_runs(db)) == 480

    # A window with no runs still writes a page; a missing store is a message, not a traceback.
    write_html_report(db, tmp_path / "empty.html", since_s=60, now_ms=NOW_MS + 3600_000)
    assert "No journey runs in this window." in (tmp_path / "empty.html").read_text()
    with pytest.raises(ReportError, match="no results yet"):
        write_html_report(tmp_path / "missing.db", tmp_path / "x.html")


@pytest.mark.browser
@needs(CHROMIUM.exists(), "Debian chromium")
async def test_page_renders_in_chromium_without_errors(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    db, page_path = tmp_path / "qos-results.db", tmp_path / "report.html"
    SCREENSHOT = tmp_path / "html-report.png"
    await _store(db)
    write_html_report(db, page_path, now_ms=NOW_MS)
    problems: list[str] = []
    requests: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            page = await browser.new_page(viewport={"width": 1010, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(page_path.as_uri(), wait_until="load")
            charts = await page.eval_on_selector_all(
                "svg.chart", """svgs => svgs.map(s => ({
                    ok: s.querySelectorAll('rect.ok').length, fail: s.querySelectorAll('rect.fail').length,
                    p95: s.querySelectorAll('path.p95').length, uptime: s.querySelectorAll('rect.up-ok').length,
                    hidden: s.querySelectorAll('rect.dis.hidden').length,
                    width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height}))""")
            hidden_box = await page.locator("section[data-region='eu-west'] rect.dis.hidden").first.bounding_box()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=False)
            if os.environ.get("QOS_UPDATE_SCREENSHOTS") == "1":
                shutil.copyfile(SCREENSHOT, DOCS_SCREENSHOT)
        finally:
            await browser.close()
    assert problems == []
    assert requests == [page_path.as_uri()]  # nothing but the page itself
    assert len(charts) == 2
    for c in charts:
        assert c["ok"] > 40 and c["fail"] > 0 and c["p95"] == 1 and c["uptime"] > 40, c
        assert c["width"] > 500 and c["height"] > 150, c
    assert [c["hidden"] for c in charts] == [1, 0]
    assert hidden_box is not None and hidden_box["width"] > 50  # 20 minutes of 2 hours: clearly visible
    assert 0 < SCREENSHOT.stat().st_size < 300_000


async def test_report_html_option_of_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qos_agent.cli import app

    db, page = tmp_path / "qos-results.db", tmp_path / "out" / "report.html"
    await _store(db)
    result = CliRunner().invoke(app, ["report", "--db", str(db), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"wrote {page}" in result.output and page.read_text().count('<svg class="chart"') == 2
    missing = CliRunner().invoke(app, ["report", "--db", str(tmp_path / "none.db"), "--html", str(page)])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
