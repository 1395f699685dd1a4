"""Live reload with a real `qos-agent run` process: SIGHUP adds a journey without a restart, a broken
file on SIGHUP keeps the old configuration running (and /healthz and /metrics say so), and
`run --watch` reloads on a change of the file's content by itself."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.support.demo import UPTIME_AGENT, DemoProcess
from tests.support.health import AgentProcess, sample
from tests.support.waiting import wait_for

TICKETS = """\
  - name: tickets
    steps:
      - name: open
        http: {method: POST, url: "{{ base }}/api/tickets", json: {subject: s, body: b}}
        expect: {status: 201}
"""
BROKEN = """\
  - name: broken
    intervall: 5s
    steps: []
"""


def ran(agent: AgentProcess, journey: str, after_ms: int = 0) -> dict[str, Any] | None:
    """/healthz once `journey` has a run that started after `after_ms`."""
    _, body = agent.healthz()
    last = body["last_run"].get(journey)
    return body if last is not None and last["time_ms"] > after_ms else None


def stored_runs(state: Path, journey: str) -> int:
    with sqlite3.connect(state / "qos-results.db") as db:
        (n,) = db.execute("SELECT count(*) FROM points WHERE measurement = 'journey' AND journey = ?",
                          (journey,)).fetchone()
    return int(n)


def test_sighup_adds_a_journey_and_a_broken_file_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        head = UPTIME_AGENT.format(url=demo.url)
        path.write_text(head)
        with AgentProcess(path, cwd=tmp_path) as agent:
            body = wait_for(lambda: ran(agent, "uptime"), what="uptime runs")
            assert "tickets" not in body["last_run"] and body["reloads"] == 0

            path.write_text(head + TICKETS)
            agent.hup()
            body = wait_for(lambda: ran(agent, "tickets"), what="the added journey runs after SIGHUP")
            assert body["last_run"]["tickets"]["outcome"] == "passed"
            good_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            assert (body["status"], body["reloads"], body["config_hash"]) == ("ok", 1, good_hash)

            path.write_text(head + TICKETS + BROKEN)
            agent.hup()
            body = wait_for(lambda: (b := agent.healthz()[1])["reload_error"] and b, what="the refused reload")
            status, body = agent.healthz()
            assert status == 200 and body["status"] == "degraded"
            assert f"{path}:17:5: unknown key 'intervall' in a journey" in body["reload_error"]
            assert f"{path}:18:12: journey 'broken' needs a non-empty 'steps' list" in body["reload_error"]
            assert (body["reloads"], body["reload_failures"], body["config_hash"]) == (1, 1, good_hash)
            assert body["journeys_scheduled"] == ["tickets", "uptime"]
            text = agent.metrics()
            assert sample(text, "qos_agent_config_reload_failures_total") == 1
            assert sample(text, "qos_agent_config_last_reload_success") == 0
            # ...and the old configuration keeps measuring: both journeys run on.
            since = max(body["last_run"][j]["time_ms"] for j in ("uptime", "tickets"))
            wait_for(lambda: ran(agent, "uptime", since) and ran(agent, "tickets", since),
                     what="runs after the refused reload")
            code = agent.stop()
        log = agent.log()
    assert code == 0, log
    assert "reload refused, keeping the running configuration" in log and "Traceback" not in log
    assert stored_runs(tmp_path / "state", "tickets") >= 2


def test_run_watch_reloads_when_the_content_changes(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        head = UPTIME_AGENT.format(url=demo.url)
        path.write_text(head)
        with AgentProcess(path, "--watch", cwd=tmp_path) as agent:
            wait_for(lambda: ran(agent, "uptime"), what="uptime runs")
            path.write_text(head)  # same bytes, new mtime: no reload
            path.write_text(head + TICKETS)
            body = wait_for(lambda: ran(agent, "tickets"), limit_s=10, what="the added journey runs, no signal")
            assert body["reloads"] == 1 and body["config_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
            path.touch()
            time.sleep(1.5)  # more than one poll: a touch is not a change
            assert agent.healthz()[1]["reloads"] == 1
            code = agent.stop()
    assert code == 0, agent.log()
