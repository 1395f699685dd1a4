"""The demo service for tests: in-process (`demo_service` fixture) or as its own process (`DemoProcess`).

Use the fixture by binding it in a test module (a plain import trips ruff's F811 at every use):
    from tests.support import demo as demo_support
    demo_service = demo_support.demo_service
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest_asyncio

from qos_agent.demo import FaultBook, start_demo

ROOT = Path(__file__).resolve().parents[2]
FAULT_SEED = 20240611
# Loopback only: never route admin calls through a proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# The demo checkout (login, pay) and uptime steps, as str.format templates (`{url}`/`{region}` filled
# by the caller): journeys that differ in tags, alerts or intervals share them.
CHECKOUT_STEPS = """\
    steps:
      - name: login
        http: {{method: POST, url: "{{{{ base }}}}/api/login", json: {{user: demo, password: demo}}}}
        extract: {{token: {{json: "$.token"}}}}
      - name: pay
        http: {{method: POST, url: "{{{{ base }}}}/api/pay", json: {{cart_id: c1, card: "4242 4242 4242 4242"}}}}
        expect: {{status: 200}}
"""
UPTIME_STEPS = """\
    steps:
      - name: health
        http: {{url: "{{{{ base }}}}/health"}}
        expect: {{status: 200}}
"""
# An agent with the uptime journey alone, every 300 ms (`.format(url=...)`); the reload tests append
# journeys to it and send SIGHUP.
UPTIME_AGENT = """\
version: 1
agent: {{state_dir: state, region: eu-west, listen: "127.0.0.1:0", interval: 300ms}}
variables: {{base: "{url}"}}
journeys:
  - name: uptime
    kind: uptime
""" + UPTIME_STEPS
# One agent of a region against the demo: checkout (login, pay) and the uptime check of the same service;
# `.format(region=..., url=...)`. The end-to-end tests of disruptions and of Prometheus scraping share it.
TWO_JOURNEY_AGENT = """\
version: 1
agent: {{state_dir: state, interval: 500ms, name: agent-{region}, listen: "127.0.0.1:0"}}
variables: {{base: "{url}"}}
journeys:
  - name: checkout
""" + CHECKOUT_STEPS + """  - name: uptime
    kind: uptime
""" + UPTIME_STEPS


@dataclass
class DemoService:
    """A running in-process demo: its base URL and its live fault book."""

    url: str
    faults: FaultBook


@pytest_asyncio.fixture
async def demo_service() -> AsyncIterator[DemoService]:
    """The demo on an ephemeral 127.0.0.1 port, with a seeded fault book; stopped afterwards."""
    book = FaultBook(seed=FAULT_SEED)
    runner, url = await start_demo("127.0.0.1", 0, book)
    try:
        yield DemoService(url, book)
    finally:
        await runner.cleanup()


class DemoProcess:
    """`python -m qos_agent.demo --port 0` in a subprocess, for tests that need a separate process.

        with DemoProcess("path=/api/pay,status=503") as demo:
            run_cli(..., env={"SHOP_URL": demo.url})
    """

    def __init__(self, *fault_specs: str, host: str = "127.0.0.1", start_timeout: float = 15.0) -> None:
        self.fault_specs = list(fault_specs)
        self.host = host
        self.start_timeout = start_timeout
        self.url = ""
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self.last_returncode: int | None = None
        self.last_stderr = ""

    def __enter__(self) -> DemoProcess:
        args = [sys.executable, "-m", "qos_agent.demo", "--host", self.host, "--port", "0"]
        for spec in self.fault_specs:
            args += ["--fault", spec]
        self._stderr = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            line = self._first_line()
            prefix = "demo service on "
            if not line.startswith(prefix):
                raise RuntimeError(f"demo service did not start: {line!r}; stderr: {self.stderr()}")
            self.url = line[len(prefix):].strip()
            self.port = int(self.url.rsplit(":", 1)[1])
        except BaseException:
            self.stop()
            raise
        return self

    def _first_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.start_timeout)
        if not ready:
            raise TimeoutError(f"demo service printed nothing in {self.start_timeout} s")
        return self._proc.stdout.readline()

    def stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it lingers; returns the exit code."""
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(timeout)
            if proc.stdout is not None:
                proc.stdout.close()
            self.last_returncode = code
        if self._stderr is not None:
            self.last_stderr = self.stderr()
            self._stderr.close()
            self._stderr = None
        return code

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Fault knobs through the admin endpoint (blocking; for synchronous tests).
    def add_faults(self, faults: Iterable[str | dict[str, Any]]) -> list[dict[str, Any]]:
        created: list[dict[str, Any]] = self._admin("POST", list(faults))["faults"]
        return created

    def list_faults(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._admin("GET")["faults"]
        return found

    def clear_faults(self) -> None:
        self._admin("DELETE")

    def remove_fault(self, rule_id: int) -> None:
        self._admin("DELETE", path=f"/{rule_id}")

    def _admin(self, method: str, body: object = None, path: str = "") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + "/admin/faults" + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with _NO_PROXY.open(request, timeout=5) as response:
            return json.loads(response.read())
