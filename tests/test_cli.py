"""The `qos-agent` command end to end: validate, check, run, report, against the real demo service."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from tests.support.cli import ROOT, qos, start
from tests.support.demo import DemoProcess

SAMPLE = str(ROOT / "journeys.yaml")


def test_version() -> None:
    r = qos("--version")
    assert r.returncode == 0 and r.stdout.startswith("qos-agent ")


def test_validate_sample_is_valid() -> None:
    r = qos("validate", SAMPLE)
    assert r.returncode == 0, r.stderr
    assert "valid (7 journeys" in r.stdout


def test_validate_prints_three_located_lines_for_three_mistakes(tmp_path: Path) -> None:
    bad = tmp_path / "journeys.yaml"
    bad.write_text(
        "version: 1\n"
        "agent: {concurrency: lots}\n"
        "journeys:\n"
        "  - name: shop\n"
        "    interval: 10 sec\n"
        "    steps:\n"
        "      - name: home\n"
        "        htp: {url: 'http://127.0.0.1:1/'}\n"
    )
    r = qos("validate", str(bad))
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith(str(bad))]
    assert len(lines) == 3, r.stderr
    assert lines[0].startswith(f"{bad}:2:22: 'concurrency' must be a whole number")
    assert lines[1].startswith(f"{bad}:5:15: 'interval' is not a duration")
    assert lines[2].startswith(f"{bad}:8:9: unknown step kind 'htp' (did you mean 'http'?")
    assert "Traceback" not in r.stderr + r.stdout
    assert "3 problems found" in r.stderr


def test_validate_missing_file() -> None:
    r = qos("validate", "/nonexistent/journeys.yaml")
    assert r.returncode == 2
    assert "/nonexistent/journeys.yaml:1:1: file not found" in r.stderr


def test_check_sample_passes_and_writes_junit(tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    with DemoProcess() as demo:
        t = time.monotonic()
        r = qos("check", SAMPLE, "--junit", str(junit), env={"SHOP_URL": demo.url}, cwd=tmp_path)
        wall = time.monotonic() - t
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 passed, 0 failed" in r.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "7" and suite.get("failures") == "0"
    assert sorted(tc.get("name") or "" for tc in suite.iter("testcase")) == [
        "billing", "browser_checkout", "certificate", "checkout", "onboarding", "support", "uptime"]
    print(f"\ncheck of the sample journeys: {wall:.2f}s wall (process start included)")


def test_check_fails_naming_the_step_and_reason(tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    with DemoProcess("path=/api/pay,status=503") as demo:
        r = qos("check", SAMPLE, "--junit", str(junit), env={"SHOP_URL": demo.url}, cwd=tmp_path)
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "pay: status:" in r.stdout and "503" in r.stdout
    assert "5 passed, 2 failed" in r.stdout  # checkout, and the browser checkout that pays through the same API
    failure = ET.parse(junit).getroot().find("testcase[@name='checkout']/failure")
    assert failure is not None and failure.get("type") == "status"
    assert "step 'pay'" in (failure.get("message") or "")


def test_broken_js_bundle_fails_the_browser_checkout_with_artifacts_while_uptime_is_green(tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    with DemoProcess("path=/static/app.js,break_bundle=true") as demo:
        r = qos("check", SAMPLE, "-j", "browser_checkout", "-j", "uptime", "--junit", str(junit), "--format", "json",
                env={"SHOP_URL": demo.url, "QOS_STATE_DIR": str(tmp_path / "state")}, cwd=tmp_path, timeout=120)
    assert r.returncode == 1, r.stderr
    by_name = {j["journey"]: j for j in json.loads(r.stdout)["journeys"]}
    assert by_name["uptime"]["success"] is True
    shop = by_name["browser_checkout"]
    assert shop["failed_step"] == "pay" and shop["error"] == "browser"
    assert "broken bundle" in shop["error_message"]
    artifacts = shop["steps"][2]["artifacts"]
    assert Path(artifacts["screenshot"]).stat().st_size > 0
    assert zipfile.is_zipfile(artifacts["trace"])
    assert Path(artifacts["trace"]).is_relative_to(tmp_path / "state" / "artifacts" / "browser_checkout")
    failure = ET.parse(junit).getroot().find("testcase[@name='browser_checkout']/failure")
    assert failure is not None and f"[[ATTACHMENT|{artifacts['trace']}]]" in (failure.text or "")


def test_check_json_and_journey_selection(tmp_path: Path) -> None:
    with DemoProcess("path=/health,status=500") as demo:
        r = qos("check", SAMPLE, "-j", "uptime", "-j", "billing", "--format", "json",
                env={"SHOP_URL": demo.url}, cwd=tmp_path)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["passed"] is False
    by_name = {j["journey"]: j for j in doc["journeys"]}
    assert set(by_name) == {"uptime", "billing"}
    assert by_name["uptime"]["error"] == "status" and by_name["uptime"]["steps"][0]["status_code"] == 500
    assert by_name["billing"]["success"] is True


def test_check_unknown_journey_is_a_config_error(tmp_path: Path) -> None:
    r = qos("check", SAMPLE, "-j", "chekout", cwd=tmp_path)
    assert r.returncode == 2
    assert "no journey named 'chekout'" in r.stderr


def test_run_until_sigterm_then_report(tmp_path: Path) -> None:
    config = tmp_path / "journeys.yaml"
    config.write_text((ROOT / "journeys.yaml").read_text().replace("interval: 15s", "interval: 1s"))
    with DemoProcess() as demo:
        proc = start("run", str(config), env={"SHOP_URL": demo.url, "QOS_LISTEN": "127.0.0.1:0"}, cwd=tmp_path)
        assert proc.stderr is not None
        head = []
        deadline = time.monotonic() + 60  # a busy machine takes seconds to import; wait for the agent
        while time.monotonic() < deadline and not any("journeys scheduled" in line for line in head):
            line = proc.stderr.readline()
            if not line:
                break
            head.append(line)
        time.sleep(4.0)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        err = "".join(head) + rest
    assert proc.returncode == 0, err
    assert "stopping" in err and "Traceback" not in err
    db = tmp_path / ".qos-agent" / "qos-results.db"
    with sqlite3.connect(db) as conn:
        runs = dict(conn.execute("SELECT journey, count(*) FROM points WHERE measurement='journey' GROUP BY journey"))
        agent_points = conn.execute("SELECT count(*) FROM points WHERE measurement='agent'").fetchone()[0]
    assert set(runs) == {"onboarding", "billing", "support", "checkout", "browser_checkout", "certificate", "uptime"}
    assert all(n >= 1 for n in runs.values()) and runs["uptime"] >= 2, runs  # every 1 s; a browser run takes longer
    assert agent_points >= 1  # the final self-metrics point, flushed on the way out
    r = qos("report", "--file", str(config), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in runs:
        assert name in r.stdout
    assert "100.00" in r.stdout


def test_report_without_store(tmp_path: Path) -> None:
    r = qos("report", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert r.returncode == 2  # bad input: one line, exit 2 (issue 26)
    assert "no results yet" in r.stdout + r.stderr


SECRET = "pa55-Very-Secret-Value"

SECRET_JOURNEYS = """\
version: 1
agent: {{state_dir: state}}
variables: {{base: "{url}"}}
exporters:
  - type: sqlite
  - type: jsonl
    path: points.jsonl
journeys:
  - name: leaky
    steps:
      - name: ticket
        http:
          url: "{{{{ base }}}}/api/tickets/${{TICKET_TOKEN}}?key=${{TICKET_TOKEN}}"
          headers: {{X-Token: "${{TICKET_TOKEN}}"}}
        expect:
          status: 200
          body_contains: "${{TICKET_TOKEN}}"
"""


def test_secrets_never_leave_the_agent(tmp_path: Path) -> None:
    config = tmp_path / "journeys.yaml"
    junit = tmp_path / "junit.xml"
    with DemoProcess() as demo:
        config.write_text(SECRET_JOURNEYS.format(url=demo.url))
        env = {"TICKET_TOKEN": SECRET}
        checked = qos("check", str(config), "--junit", str(junit), "--export", "--format", "json", env=env,
                      cwd=tmp_path)
        ran = qos("-v", "run", str(config), "--duration", "2s", env=env, cwd=tmp_path)
    assert checked.returncode == 1  # the ticket does not exist: a failure whose message would name the URL
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(checked.stdout)
    assert doc["journeys"][0]["steps"][0]["url"].endswith("/api/tickets/***?key=***")
    outputs = [checked.stdout, checked.stderr, ran.stdout, ran.stderr]
    files = [junit, tmp_path / "state" / "points.jsonl", *sorted((tmp_path / "state").glob("qos-results.db*"))]
    assert all(f.exists() for f in files[:3]), files
    for blob in outputs + [f.read_bytes().decode("latin-1") for f in files]:
        assert SECRET not in blob
    assert "/api/tickets/***" in (tmp_path / "state" / "points.jsonl").read_text()
