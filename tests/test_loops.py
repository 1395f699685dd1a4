"""`agent.loop`: auto takes uvloop where installed (a dependency on Linux), asyncio forces the standard loop;
`run` logs which one it runs on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from qos_agent.config.loader import load_config
from qos_agent.runloop import loops

ROOT = Path(__file__).resolve().parents[1]


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_auto_is_uvloop_on_linux_and_asyncio_forces_the_standard_loop() -> None:
    expected = "uvloop" if sys.platform == "linux" else "asyncio"
    assert loops.run(loop_module(), "auto") == expected
    assert loops.run(loop_module(), "uvloop" if expected == "uvloop" else "asyncio") == expected
    assert loops.run(loop_module(), "asyncio") == "asyncio"
    assert loops.loop_factory("asyncio") == ("asyncio", None)


@pytest.mark.parametrize("mode", ["asyncio", "auto"])
def test_run_logs_its_loop(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(f"version: 1\nagent: {{state_dir: s, listen: off, loop: {mode}}}\njourneys:\n"
                    "  - {name: a, interval: 1h, steps: [{name: s, http: {url: 'http://127.0.0.1:9/'}}]}\n")
    assert load_config(path, env={}).agent.loop == mode
    r = subprocess.run([sys.executable, "-m", "qos_agent", "run", str(path), "--duration", "0.3s"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    want = "uvloop" if mode == "auto" and sys.platform == "linux" else "asyncio"
    assert f"(event loop: {want})" in r.stderr, r.stderr
