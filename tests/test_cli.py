"""The `qos-agent` command end to end: validate, check, run, report, against the real demo service."""

from __future__ import annotations

import json
import shutil
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
    assert "valid (8 journeys" in r.stdout


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
    assert "8 passed, 0 failed" in r.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "8" and suite.get("failures") == "0"
    assert sorted(tc.get("name") or "" for tc in suite.iter("testcase")) == [
        "billing", "browser_checkout", "certificate", "checkout", "onboarding", "scripted_checkout", "support", "uptime"]
    print(f"\ncheck of the sample journeys: {wall:.2f}s wall (process start included)")


def test_check_fails_naming_the_step_and_reason(tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    with DemoProcess("path=/api/pay,status=503") as demo:
        r = qos("check", SAMPLE, "--junit", str(junit), env={"SHOP_URL": demo.url}, cwd=tmp_path)
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "pay: status:" in r.stdout and "503" in r.stdout
    assert "5 passed, 3 failed" in r.stdout  # checkout, and the browser and scripted checkouts paying through the same API
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
    shutil.copytree(ROOT / "steps", tmp_path / "steps")  # the sample's script step, beside it
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
    assert set(runs) == {"onboarding", "billing", "support", "checkout", "browser_checkout", "scripted_checkout",
                         "certificate", "uptime"}
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


COMMANDS = ("validate", "check", "run", "report", "demo", "schema", "init", "demo-service")


def test_every_command_takes_verbose_and_the_help_is_whole() -> None:
    """Issue 27: `check -v` was refused (only `qos-agent -v check` worked); help lines were cut short."""
    for command in COMMANDS:
        r = qos(command, "--help")
        assert r.returncode == 0 and "-v, --verbose" in r.stdout, (command, r.stdout)
    top = qos("--help").stdout
    listed = [line for line in top.splitlines() if line.startswith("  ") and line.split()[0] in COMMANDS]
    assert len(listed) == len(COMMANDS) and not any(line.rstrip().endswith("...") for line in listed), top
    assert qos("validate", SAMPLE, "-v").returncode == 0


def test_validate_format_json(tmp_path: Path) -> None:
    ok = qos("validate", SAMPLE, "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"valid": True, "problems": [], "warnings": []}
    bad = tmp_path / "journeys.yaml"
    bad.write_text("version: 1\njourneys:\n  - name: shop\n    intervall: 10s\n    steps: []\n")
    r = qos("validate", str(bad), "--format", "json")
    assert r.returncode == 2 and r.stderr == ""
    doc = json.loads(r.stdout)
    assert doc["valid"] is False and doc["problems"][0] == {
        "file": str(bad), "line": 4, "column": 5,
        "message": "unknown key 'intervall' in a journey (did you mean 'interval'?)"}
    assert {p["line"] for p in doc["problems"]} == {4, 5}


def test_run_journey_runs_only_the_named_ones(tmp_path: Path) -> None:
    with DemoProcess() as demo:
        r = qos("run", SAMPLE, "--journey", "uptime", "--duration", "3s", env={"SHOP_URL": demo.url,
                "QOS_STATE_DIR": str(tmp_path / "state")}, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "1 journeys scheduled" in r.stderr
    unknown = qos("run", SAMPLE, "--journey", "nope", "--duration", "1s", cwd=tmp_path)
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_init_writes_a_file_that_validates_and_passes_check(tmp_path: Path) -> None:
    with DemoProcess() as demo:
        made = qos("init", demo.url, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert "wrote journeys.yaml" in made.stdout
        text = (tmp_path / "journeys.yaml").read_text()
        assert text.startswith("# journeys.yaml for ") and 'http: {url: "{{ base }}/health"}' in text
        assert qos("validate", cwd=tmp_path).returncode == 0
        checked = qos("check", cwd=tmp_path, timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "3 passed, 0 failed" in checked.stdout
        again = qos("init", demo.url, cwd=tmp_path)
        assert again.returncode == 2 and "exists (add --force to overwrite it)" in again.stderr
        assert qos("init", demo.url, "--force", cwd=tmp_path).returncode == 0
    assert qos("init", "ftp://x", cwd=tmp_path).returncode == 2


def test_the_readme_example_passes_against_the_demo(tmp_path: Path) -> None:
    """Issue 27: the README's own example failed against the bundled demo (no card sent)."""
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in readme.split("```yaml\n")[1:] if b.startswith("version: 1"))
    (tmp_path / "journeys.yaml").write_text(block.split("```")[0])
    with DemoProcess() as demo:
        r = qos("check", env={"SHOP_URL": demo.url, "SHOP_PASSWORD": "demo"}, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed, 0 failed" in r.stdout
