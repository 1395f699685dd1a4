"""Hostile responses cost a real `qos-agent run` process a bounded amount (issue 11): JSON nested
100,000 deep under `expect: json` is an assertion with a clear message (not `internal`); a garbage
status line and a reset mid-body give one short printable message (no raw bytes, no reprs); a large
body within max_body is read with memory near its size and not held between runs; a journey whose
every tick overlaps logs one line a minute, not one a tick."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.support.health import AgentProcess
from tests.support.hostile import HostileServer
from tests.support.waiting import wait_for

BIG_MB = 64
CONFIG = """\
version: 1
agent: {{state_dir: state, region: eu-west, listen: "127.0.0.1:0", interval: 1s}}
journeys:
  - name: deep
    steps:
      - name: get
        http: {{url: "{url}/deep-json"}}
        expect: {{json: {{"$[0]": {{exists: true}}}}}}
  - name: deep-extract
    steps:
      - name: get
        http: {{url: "{url}/deep-json"}}
        extract: {{token: {{json: "$[0]"}}}}
  - name: garbage
    steps:
      - name: get
        http: {{url: "{url}/garbage"}}
  - name: reset
    steps:
      - name: get
        http: {{url: "{url}/reset"}}
  - name: stall
    interval: 100ms
    steps:
      - name: get
        timeout: 20s
        http: {{url: "{url}/stall"}}
  - name: big
    interval: 500ms
    steps:
      - name: get
        timeout: 30s
        http: {{url: "{url}/big", max_body: 300MiB}}
        expect: {{body_contains: "xxxx"}}
"""


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _steps(db: Path, journey: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT fields FROM points WHERE measurement = 'step' AND journey = ?",
                            (journey,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def test_hostile_responses_cost_a_bounded_amount(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    with HostileServer(big_mb=BIG_MB, big_delay_s=3.0) as srv:
        path.write_text(CONFIG.format(url=srv.url))
        with AgentProcess(path, cwd=tmp_path) as agent:
            assert agent._proc is not None
            pid = agent._proc.pid
            base_kb = _status_kb(pid, "VmRSS")  # the first big body is still 3s away
            wait_for(lambda: srv.hits.get("/big", 0) >= 3, limit_s=60, every=0.2, what="three big runs")
            # Between big runs (the server waits 3s before each body) the body must not be held.
            held_kb = min(_status_kb(pid, "VmRSS") for _ in range(20) if time.sleep(0.15) is None)
            peak_kb = _status_kb(pid, "VmHWM")
            code = agent.stop()
        log = agent.log()
    assert code == 0, log
    body_kb = BIG_MB * 1024
    peak_growth, held = (peak_kb - base_kb) / body_kb, (held_kb - base_kb) / body_kb
    print(f"big body {BIG_MB} MiB: peak RSS growth {peak_growth:.2f}x the body, held between runs {held:.2f}x")
    assert peak_growth < 2.3, f"peak RSS grew by {peak_growth:.2f}x the body"
    assert held < 0.5, f"{held:.2f}x the body held between runs"

    db = tmp_path / "state" / "qos-results.db"
    for journey, error, words in (("deep", "assertion", "expect.json: the body's JSON nests deeper than 100 levels"),
                                  ("deep-extract", "extract", "the body's JSON nests deeper than 100 levels"),
                                  ("garbage", "connect", "invalid HTTP response: Bad status line"),
                                  ("reset", "connect", "response body cut off")):
        steps = _steps(db, journey)
        assert steps, journey
        for fields in steps:
            message = fields["error_message"]
            assert fields["error"] == error and words in message, (journey, fields)
            assert len(message) <= 300 and message.isprintable(), (journey, message)
            assert "\\x" not in message and "<" not in message and "b'" not in message, (journey, message)
    assert all(f["error"] == "" for f in _steps(db, "big")), _steps(db, "big")[:1]

    overlap_lines = [x for x in log.splitlines() if "journey stall: previous run still in flight" in x]
    assert len(overlap_lines) == 1, overlap_lines  # about 100 ticks overlapped: one line a minute
    assert "Traceback" not in log, log
