"""The agent says what it does (issue 27: silent failures). The startup line lists the sinks; a failed
run is logged at INFO with its step, class, message and trace; a reload that changes exporters or
`listen` (which apply only at the next start) says so in the log and on /healthz; `validate` warns
when `exporters:` leaves out the sqlite store that `report` reads."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from qos_agent.config.loader import load_config
from qos_agent.demo.faults import parse_fault_spec
from qos_agent.runloop.agent import Agent
from tests.support import demo as demo_support
from tests.support.cli import qos

demo_service = demo_support.demo_service

CONFIG = """\
version: 1
agent: {{state_dir: state, region: eu-west, name: a1, listen: "127.0.0.1:0", interval: 200ms}}
variables: {{base: "{url}"}}
{exporters}
journeys:
  - name: pay
    steps:
      - name: pay
        http: {{method: POST, url: "{{{{ base }}}}/api/pay", json: {{cart_id: c1, card: "4242 4242 4242 4242"}}}}
        expect: {{status: 200}}
"""


async def test_the_startup_line_failed_runs_and_a_reload_it_cannot_apply(
        tmp_path: Path, demo_service: demo_support.DemoService, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(CONFIG.format(url=demo_service.url, exporters=""))
    rule = demo_service.faults.add(parse_fault_spec("path=/api/pay,status=503"))
    agent = Agent(load_config(path, env={}), str(path))
    caplog.set_level(logging.INFO)
    task = asyncio.create_task(agent.run(handle_signals=False))
    try:
        async with asyncio.timeout(15):
            while not any("run failed: pay" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        start = next(r.getMessage() for r in caplog.records if "journeys scheduled" in r.getMessage())
        assert "1 journeys scheduled, sinks: sqlite#0" in start, start
        failed = next(r for r in caplog.records if "run failed: pay" in r.getMessage())
        assert failed.levelno == logging.INFO
        assert "pay in eu-west at step pay: status: HTTP 503, expected 200 (trace " in failed.getMessage()

        path.write_text(CONFIG.format(url=demo_service.url, exporters="exporters:\n  - {type: sqlite}\n"
                                      "  - {type: jsonl, path: out.jsonl}").replace("127.0.0.1:0", "127.0.0.1:1"))
        agent.reload()
        assert any("exporters and listen changed; the running one is kept until the agent restarts" in r.getMessage()
                   and r.levelno == logging.WARNING for r in caplog.records)
        async with aiohttp.ClientSession(trust_env=False) as http, http.get(agent.health_url + "/healthz") as r:
            body = await r.json()
        assert r.status == 200 and body["status"] == "degraded" and body["pending_restart"] == ["exporters", "listen"]
        assert any("the last reload changed exporters and listen" in p for p in body["problems"]), body
        assert [s["name"] for s in body["sinks"]] == ["sqlite#0"]  # the running sinks are kept
    finally:
        demo_service.faults.remove(rule)
        agent.stop_event.set()
        await asyncio.wait_for(task, 30)


def test_validate_warns_when_exporters_leave_out_the_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(CONFIG.format(url="http://127.0.0.1:1", exporters="exporters:\n  - {type: jsonl}"))
    r = qos("validate", str(path))
    assert r.returncode == 0, r.stderr
    assert (f"warning: {path}:5:3: 'exporters' has no sqlite store: `qos-agent report` has nothing local to read"
            in r.stderr), r.stderr
    # ...and report says why there is nothing to read, instead of "run first" while the agent runs.
    r = qos("report", "-f", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "exporters: leaves out sqlite, so no agent of this file keeps a store for report to read" in r.stderr
    assert "add '- type: sqlite' under exporters:" in r.stderr and "run first" not in r.stderr
