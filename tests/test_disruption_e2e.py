"""The headline, with real processes: one region's checkout breaks while its uptime answers 200."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

from tests.support.cli import qos, start
from tests.support.demo import TWO_JOURNEY_AGENT as AGENT
from tests.support.demo import DemoProcess


def disruptions(db: Path) -> list[tuple[str, str, dict[str, object]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT tags, fields FROM points WHERE measurement = 'disruption' ORDER BY time_ms")
        out = []
        for tags, fields in rows:
            t = json.loads(tags)
            out.append((t["region"], t["state"], json.loads(fields)))
        return out


def test_two_regions_two_services_one_hidden_disruption(tmp_path: Path) -> None:
    with DemoProcess() as eu_service, DemoProcess() as ap_service:
        agents = {}
        for region, service in (("eu-west", eu_service), ("ap-south", ap_service)):
            home = tmp_path / region
            home.mkdir()
            (home / "journeys.yaml").write_text(AGENT.format(region=region, url=service.url))
            agents[region] = (home, start("run", str(home / "journeys.yaml"), "--region", region,
                                          "--duration", "7s", cwd=home))
        time.sleep(2.0)
        ap_service.add_faults(["path=/api/pay,status=503"])  # checkout breaks; /health stays 200
        for _home, proc in agents.values():
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    eu = disruptions(agents["eu-west"][0] / "state" / "qos-results.db")
    ap = disruptions(agents["ap-south"][0] / "state" / "qos-results.db")
    assert eu == []
    assert [(region, state) for region, state, _ in ap] == [("ap-south", "open")]
    fields = ap[0][2]
    assert fields["uptime_ok"] is True  # uptime monitoring saw nothing
    assert "consecutive failed runs" in str(fields["reason"])
    report = qos("report", "--db", str(agents["ap-south"][0] / "state" / "qos-results.db"))
    assert "checkout" in report.stdout and "green (missed it)" in report.stdout


def test_demo_command_shows_the_hidden_disruption(tmp_path: Path) -> None:
    r = qos("demo", "--state-dir", str(tmp_path / "demo"), "--interval", "500ms", "--fault-at", "2s",
            "--heal-at", "5s", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "FAULT: /api/pay answers 503 for ap-south only" in out
    assert "DISRUPTION OPEN  checkout in ap-south" in out and "hidden from uptime monitoring" in out
    assert "DISRUPTION CLOSED checkout in ap-south" in out
    assert "eu-west" in out and "us-east" in out
    assert "Disruptions" in out and "green (missed it)" in out
    opened = [line for line in out.splitlines() if "DISRUPTION OPEN" in line]
    assert len(opened) == 1 and all("ap-south" in line for line in opened)
    # The demo's store drawn for people without Grafana: the hidden disruption is on the page.
    page = tmp_path / "report.html"
    html = qos("report", "--db", str(tmp_path / "demo" / "qos-results.db"), "--html", str(page))
    assert html.returncode == 0, html.stdout + html.stderr
    text = page.read_text()
    sections = {m.group(1): m.group(2) for m in re.finditer(
        r'<section class="card" data-journey="checkout" data-region="([^"]+)">(.*?)</section>', text, re.S)}
    assert set(sections) == {"eu-west", "us-east", "ap-south"}
    assert "1 hidden from uptime" in sections["ap-south"]
    assert "hidden from uptime" not in sections["eu-west"] + sections["us-east"]
