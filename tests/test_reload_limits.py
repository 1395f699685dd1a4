"""The reload safety child's limits, each driven for real (issue 23): its wall time (the parent kills
it), its address-space limit (the child's MemoryError) and its CPU limit (the kernel kills it). No
real file reaches them (the loader's own bounds stop every hostile file first: tests/test_reload_hostile.py),
so QOS_RELOAD_TEST makes the real child misbehave under its real limits (qos_agent/ops/reload.py).
Each refusal is logged, the old configuration keeps running, /healthz says degraded, and a later
valid reload is applied."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from qos_agent.ops import reload
from tests.support import demo as demo_support
from tests.support.waiting import until
from tests.test_health import healthz, running, write_config
from tests.test_reload_phase import reload_now

demo_service = demo_support.demo_service

EXTRA = """\
  - name: extra
    interval: 200ms
    steps:
      - name: health
        http: {url: "{{ base }}/health"}
"""


@pytest.mark.parametrize(("how", "said"), [
    ("stall", "reading the file took more than 2s"),  # the wall time, shortened from 20 s for the test
    ("hog", "reading the file needs more than 1024 MB"),
    ("spin", "checking the file ran out of CPU time (SIGXCPU)"),
])
async def test_a_child_past_its_limit_is_a_refusal_and_the_agent_carries_on(
        tmp_path: Path, demo_service: demo_support.DemoService, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, how: str, said: str) -> None:
    if how == "stall":
        monkeypatch.setattr(reload, "VET_TIMEOUT_S", 2.0)
    path = write_config(tmp_path, demo_service.url)
    good = path.read_text()
    async with running(path) as (agent, http):

        async def last_uptime_ms() -> int:
            _, body = await healthz(agent, http)
            return int(body["last_run"].get("uptime", {}).get("time_ms", 0))

        await until(last_uptime_ms, limit_s=8)
        monkeypatch.setenv(reload.TEST_ENV, how)
        path.write_text(good + EXTRA)  # a valid file: only the child's misbehaviour refuses it
        with caplog.at_level(logging.ERROR, logger="qos_agent.ops.reload"):
            await asyncio.wait_for(reload_now(agent), 60)
        status, body = await healthz(agent, http)
        assert (status, body["status"]) == (200, "degraded"), body
        assert body["reload_error"].startswith(f"{path}:1:1: ") and said in body["reload_error"], body["reload_error"]
        assert (body["reloads"], body["reload_failures"]) == (0, 1)
        assert body["journeys_scheduled"] == ["pay", "uptime"]  # the old configuration runs on...
        assert "the last reload was refused; the previous configuration is still running" in body["problems"]
        logged = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("reload refused, keeping the running configuration") for m in logged), logged
        assert any(said in m for m in logged), logged
        assert not any(r.exc_info for r in caplog.records)  # a refusal, never a traceback
        before = await last_uptime_ms()

        async def measured_since() -> bool:
            return await last_uptime_ms() > before

        assert await until(measured_since, limit_s=8)  # ...and measures

        monkeypatch.delenv(reload.TEST_ENV)
        await asyncio.wait_for(reload_now(agent), 60)

        async def applied() -> dict[str, Any] | None:
            status, body = await healthz(agent, http)
            return body if status == 200 and body["status"] == "ok" and "extra" in body["last_run"] else None

        body = await until(applied, limit_s=8)
        assert (body["reloads"], body["reload_failures"], body["reload_error"]) == (1, 1, "")
