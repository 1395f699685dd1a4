"""`script` steps in the real `qos-agent` process (issue 25): scripts that exit, interrupt, hang or block
never stop the agent, each run is a classified result, no traceback reaches the log; a changed script
is a changed journey for `run --watch` and for SIGHUP; `check` and its JUnit name a failing sub-step."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.cli import qos
from tests.support.demo import DemoProcess
from tests.support.health import AgentProcess
from tests.support.waiting import wait_for

SCRIPTS = """\
import asyncio
import sys
import time


async def exits(ctx):
    sys.exit(3)

async def interrupts(ctx):
    raise KeyboardInterrupt

async def hangs(ctx):
    async with ctx.step("wait"):
        await asyncio.Event().wait()

async def blocks(ctx):
    await asyncio.sleep(0)
    time.sleep(0.2)
"""
AGENT = """\
version: 1
agent: {{state_dir: state, region: eu-west, listen: "127.0.0.1:0", interval: 300ms}}
variables: {{base: "{url}"}}
journeys:
  - name: exits
    steps: [{{name: s, script: "steps/s.py:exits"}}]
  - name: interrupts
    steps: [{{name: s, script: "steps/s.py:interrupts"}}]
  - name: hangs
    steps: [{{name: s, timeout: 400ms, script: "steps/s.py:hangs"}}]
  - name: blocks
    steps: [{{name: s, script: "steps/s.py:blocks"}}]
  - name: uptime
    kind: uptime
    steps: [{{name: health, http: {{url: "{{{{ base }}}}/health"}}}}]
"""


def steps_stored(state: Path) -> list[dict[str, Any]]:
    try:
        with sqlite3.connect(state / "qos-results.db") as db:
            rows = db.execute("SELECT tags, fields FROM points WHERE measurement = 'step' ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not made yet
        return []
    return [{**json.loads(tags), **json.loads(fields)} for tags, fields in rows]


def last(agent: AgentProcess, journey: str) -> dict[str, Any] | None:
    return agent.healthz()[1]["last_run"].get(journey)


def test_scripts_that_exit_interrupt_hang_or_block_never_stop_the_agent_and_a_change_reloads(tmp_path: Path) -> None:
    (tmp_path / "steps").mkdir()
    script = tmp_path / "steps" / "s.py"
    script.write_text(SCRIPTS)
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        path.write_text(AGENT.format(url=demo.url))
        with AgentProcess(path, "--watch", cwd=tmp_path, start_timeout=60) as agent:
            def ran_thrice() -> bool:
                counts = Counter(p["journey"] for p in steps_stored(tmp_path / "state") if p["step"] == "s")
                return all(counts[j] >= 3 for j in ("exits", "interrupts", "hangs", "blocks")) or None  # type: ignore[return-value]

            wait_for(ran_thrice, limit_s=60, every=0.5, what="three runs of every script journey")
            assert agent.healthz()[0] == 200
            script.write_text(SCRIPTS.replace("    sys.exit(3)", "    pass"))  # no signal: --watch sees it
            wait_for(lambda: (r := last(agent, "exits")) and r["outcome"] == "passed", limit_s=20,
                     what="the changed script runs")
            code = agent.stop()
        log = agent.log()
    assert code == 0, log
    assert "Traceback" not in log and "reloading" in log
    assert "journey blocks, step s: the script held the event loop for" in log
    points = steps_stored(tmp_path / "state")
    errors = {(p["journey"], p["step"], p["error"]) for p in points}
    assert {("exits", "s", "script"), ("interrupts", "s", "script"), ("hangs", "s.wait", "timeout"),
            ("hangs", "s", "timeout"), ("blocks", "s", ""), ("exits", "s", "")} <= errors
    blocked = [p for p in points if p["journey"] == "blocks"]
    assert all(p["lagged"] is True and p["blocked_ms"] >= 150 for p in blocked), blocked[:2]
    assert any(p["error_message"] == "SystemExit(3): the script tried to end the agent; it carries on "
               "(at steps/s.py:7)" for p in points)


def test_sighup_picks_up_a_changed_script(tmp_path: Path) -> None:
    (tmp_path / "steps").mkdir()
    script = tmp_path / "steps" / "s.py"
    script.write_text("async def s(ctx):\n    assert False, 'first version'\n")
    path = tmp_path / "journeys.yaml"
    path.write_text("version: 1\nagent: {state_dir: state, listen: '127.0.0.1:0', interval: 300ms}\n"
                    "journeys:\n  - name: j\n    steps: [{name: s, script: 'steps/s.py:s'}]\n")
    with AgentProcess(path, cwd=tmp_path, start_timeout=60) as agent:
        wait_for(lambda: (r := last(agent, "j")) and r["outcome"] == "failed", limit_s=20, what="a failed run")
        script.write_text("async def s(ctx):\n    pass\n")
        agent.hup()
        body = wait_for(lambda: (r := last(agent, "j")) and r["outcome"] == "passed" and agent.healthz()[1],
                        limit_s=20, what="the reloaded script passes")
        assert body["reloads"] == 1 and body["reload_error"] == ""
        code = agent.stop()
    assert code == 0, agent.log()


def test_check_and_its_junit_name_the_failing_sub_step(tmp_path: Path) -> None:
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "pay.py").write_text("""\
async def pay(ctx):
    page = await ctx.page()
    async with ctx.step("open"):
        await page.goto(ctx.vars["base"] + "/checkout/hosted")
    async with ctx.step("card"):
        total = 0
        assert total > 0, "the cart is empty"
""")
    path = tmp_path / "journeys.yaml"
    junit = tmp_path / "out.xml"
    with DemoProcess() as demo:
        path.write_text(f"version: 1\nagent: {{state_dir: state}}\nvariables: {{base: '{demo.url}'}}\njourneys:\n"
                        "  - name: shop\n    steps:\n      - {name: pay, script: 'steps/pay.py:pay'}\n")
        r = qos("check", str(path), "--junit", str(junit), cwd=tmp_path, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pay.card: assertion: AssertionError: the cart is empty" in r.stdout  # the table's "why"
    assert "Traceback" not in r.stdout + r.stderr
    failure = ET.parse(junit).getroot().find("testcase[@name='shop']/failure")
    assert failure is not None and failure.get("type") == "assertion"
    assert failure.get("message") == ("step 'pay.card' failed: assertion: AssertionError: the cart is empty "
                                      "(at steps/pay.py:7)")
    body = failure.text or ""
    assert "✓ pay.open" in body and "✗ pay.card assertion" in body and "[[ATTACHMENT|" in body
