"""Reloads that cannot hurt a real `qos-agent run` process (issue 11): a malformed file on SIGHUP is a
counted, located refusal (no "Exception in callback", no traceback); the alias bomb on SIGHUP does
not block the loop, balloon RSS or delay SIGTERM; `run --watch` keeps watching after a bad edit and
loads the later fix."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.demo import UPTIME_AGENT, DemoProcess
from tests.support.health import AgentProcess, sample
from tests.support.waiting import wait_for

TICKETS = """\
  - name: tickets
    steps:
      - name: list
        http: {url: "{{ base }}/health"}
"""
BOMB = "version: 1\nvariables:\n" + "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)) + "journeys: []\n"

# One malformed file per class the issue found, and where its first problem must be located.
MALFORMED: list[tuple[str, str]] = [
    ("version: !!int abc\njourneys: []\n", ":1:10: 'abc' is not a whole number"),
    ("version: 1\nvariables: &r [*r]\njourneys: []\n", ":2:16: the alias *r refers to the value that contains it"),
    ("version: 1\nagent: {<<: 1}\njourneys: []\n", ":2:9: merge keys ('<<') are not part of the language"),
    ("version: 1\nvariables: " + "[" * 5000 + "]" * 5000 + "\n", ":2:"),
    ("version: 1\njourneys: [{name: \"caf\xe9\"}]\n", ":2:23: byte 0xe9 is not UTF-8"),
    ("version: 1\njourneys:\n\t- name: x\n", ":3:1: YAML syntax error"),
]


def _rss_kb(agent: AgentProcess, field: str) -> int:
    assert agent._proc is not None
    for line in Path(f"/proc/{agent._proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _refused(agent: AgentProcess, failures: int) -> dict[str, Any] | None:
    status, body = agent.healthz()
    return body if status == 200 and body["reload_failures"] >= failures else None


def _last_run_ms(agent: AgentProcess, journey: str) -> int:
    last = agent.healthz()[1]["last_run"].get(journey)
    return int(last["time_ms"]) if last else 0


def test_sighup_with_malformed_files_and_the_alias_bomb(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        good = UPTIME_AGENT.format(url=demo.url)
        path.write_text(good)
        with AgentProcess(path, cwd=tmp_path) as agent:
            wait_for(lambda: _last_run_ms(agent, "uptime"), what="uptime runs")
            for n, (text, where) in enumerate(MALFORMED, start=1):
                path.write_bytes(text.encode("latin-1"))
                agent.hup()
                body = wait_for(lambda n=n: _refused(agent, n), limit_s=30, what=f"refusal {n}")
                assert body["status"] == "degraded" and body["reloads"] == 0
                assert body["reload_error"].startswith(f"{path}{where}"), body["reload_error"]
            assert sample(agent.metrics(), "qos_agent_config_reload_failures_total") == len(MALFORMED)

            # The alias bomb: the loop keeps answering and measuring, RSS stays put, SIGTERM is honoured.
            rss_before = _rss_kb(agent, "VmRSS")
            before = _last_run_ms(agent, "uptime")
            path.write_text(BOMB)
            agent.hup()
            slowest = 0.0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                _, body = agent.healthz()
                slowest = max(slowest, time.monotonic() - t0)
                if body["reload_failures"] == len(MALFORMED) + 1:
                    break
                time.sleep(0.05)
            assert "aliases expand to more than" in body["reload_error"], body["reload_error"]
            assert slowest < 2.0, f"/healthz took {slowest:.2f}s during the bomb's reload"
            wait_for(lambda: _last_run_ms(agent, "uptime") > before, what="runs go on after the bomb")
            peak_growth_mb = (_rss_kb(agent, "VmHWM") - rss_before) / 1024
            print(f"\nalias bomb on SIGHUP: slowest /healthz {slowest * 1000:.0f} ms, peak RSS growth "
                  f"{peak_growth_mb:.1f} MB")
            assert peak_growth_mb < 50, f"RSS grew by {peak_growth_mb:.0f} MB"

            path.write_text(BOMB)
            agent.hup()  # and SIGTERM while that reload is being vetted
            t0 = time.monotonic()
            code = agent.stop(timeout=20)
            stop_s = time.monotonic() - t0
        log = agent.log()
    assert code == 0, log
    assert stop_s < 15, f"SIGTERM took {stop_s:.1f}s"
    assert "Exception in callback" not in log and "Traceback" not in log, log
    assert "reload refused, keeping the running configuration" in log
    assert f"{path}:2:16: the alias *r refers to the value that contains it" in log


def test_watch_keeps_watching_after_a_bad_edit_and_loads_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    with DemoProcess() as demo:
        good = UPTIME_AGENT.format(url=demo.url)
        path.write_text(good)
        with AgentProcess(path, "--watch", cwd=tmp_path) as agent:
            wait_for(lambda: _last_run_ms(agent, "uptime"), what="uptime runs")
            for n, text in enumerate((good + "  - name: [broken\n", BOMB, "version: !!int x\n"), start=1):
                path.write_text(text)
                wait_for(lambda n=n: _refused(agent, n), limit_s=30, what=f"bad edit {n} refused")
            path.write_text(good + TICKETS)
            body = wait_for(lambda: (b := agent.healthz()[1])["last_run"].get("tickets") and b, limit_s=30,
                            what="the fix is loaded and its new journey runs")
            assert (body["reloads"], body["reload_failures"], body["reload_error"]) == (1, 3, "")
            code = agent.stop()
        log = agent.log()
    assert code == 0, log
    assert "Traceback" not in log and "Exception in callback" not in log, log
