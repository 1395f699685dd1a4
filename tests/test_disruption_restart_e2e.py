"""Every disruption opened is closed, with real processes (issue 23): `qos-agent run` against the demo
service, its points read from a jsonl sink. A `kill -9` while open: the restarted agent announces it
again with its first open time and keeps it open while it is still broken; a SIGTERM, the fault
healed meanwhile: the first run after the restart closes it (`healed`); a SIGHUP that renames the
journey while open: closed (`removed`)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.support.demo import CHECKOUT_STEPS, UPTIME_STEPS, DemoProcess
from tests.support.health import AgentProcess, sample
from tests.support.waiting import wait_for

AGENT = """\
version: 1
agent: {{state_dir: state, region: ap-south, name: agent-ap, listen: "127.0.0.1:0", interval: 300ms}}
variables: {{base: "{url}"}}
exporters: [{{type: jsonl, path: points.jsonl}}]
journeys:
  - name: checkout
    tags: {{stage: purchase}}
""" + CHECKOUT_STEPS + """  - name: uptime
    kind: uptime
""" + UPTIME_STEPS


def points(home: Path, measurement: str = "disruption") -> list[dict[str, Any]]:
    path = home / "state" / "points.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["measurement"] == measurement]


def kill9(agent: AgentProcess) -> None:
    proc = agent._proc
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    agent._proc = None


def test_kill9_sigterm_and_a_rename_leave_no_disruption_unclosed(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        path.write_text(AGENT.format(url=demo.url))
        demo.add_faults(["path=/api/pay,status=503"])
        with AgentProcess(path, cwd=tmp_path, start_timeout=60) as agent:
            (opened,) = wait_for(lambda: points(tmp_path), limit_s=30, what="the open point")
            assert (opened["tags"]["state"], opened["tags"]["journey"]) == ("open", "checkout")
            kill9(agent)  # no stop, no flush: the file has it since before the point was handed over

        runs_before = len(points(tmp_path, "journey"))
        with AgentProcess(path, cwd=tmp_path, start_timeout=60) as agent:
            wait_for(lambda: len(points(tmp_path, "journey")) > runs_before + 6, limit_s=30, what="runs, still broken")
            again = points(tmp_path)[1:]
            assert again == [opened], again  # announced again, exactly as first: same time and fields, no close
            text = agent.metrics()
            assert sample(text, "qos_disruption_open", journey="checkout", hidden_from_uptime="true") == 1
            assert agent.stop() == 0
            demo.clear_faults()  # it heals while the agent is down

        runs_before = len(points(tmp_path, "journey"))
        with AgentProcess(path, cwd=tmp_path, start_timeout=60) as agent:
            closed = wait_for(lambda: [p for p in points(tmp_path) if p["tags"]["state"] == "close"], limit_s=30,
                              what="the close after the restart")
            (close,) = closed
            first_run = next(p for p in points(tmp_path, "journey")[runs_before:] if p["tags"]["journey"] == "checkout")
            assert close["fields"]["close_reason"] == "healed" and close["fields"]["opened_ms"] == opened["time_ms"]
            assert close["time_ms"] == first_run["time_ms"]  # closed by the first run after the restart
            assert close["tags"] == {**opened["tags"], "state": "close"}

            demo.add_faults(["path=/api/pay,status=503"])
            wait_for(lambda: len(points(tmp_path)) == 5, limit_s=30, what="a new open")  # + the announced one
            path.write_text(path.read_text().replace("name: checkout", "name: checkout-v2"))
            agent.hup()
            last = wait_for(lambda: (p := points(tmp_path)[-1])["tags"]["state"] == "close" and p, limit_s=30,
                            what="the close of the renamed journey")
            assert (last["tags"]["journey"], last["fields"]["close_reason"]) == ("checkout", "removed")
            assert agent.stop() == 0
        log = agent.log()
    assert "Traceback" not in log, log
    states = [(p["tags"]["journey"], p["tags"]["state"], p["fields"]["opened_ms"]) for p in points(tmp_path)]
    opens = {(j, o) for j, s, o in states if s == "open"}
    closes = [(j, o) for j, s, o in states if s == "close"]
    assert sorted(closes) == sorted(opens) and len(closes) == len(set(closes)), states  # each open closed once
