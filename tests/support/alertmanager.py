"""A real Alertmanager (Debian `prometheus-alertmanager`) for the alert tests, and a loopback webhook receiver.

`AlertmanagerServer` writes a config whose one route sends every alert to a webhook receiver on
127.0.0.1 (with `send_resolved`), so a test sees Alertmanager's own notifications. The port and
storage stay across stop/start, so a test can take it away and bring it back (an outage). Under
CI=true a missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.components import missing
from tests.support.influx import free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_alertmanager() -> str:
    """The binary's path; skip without it, except under CI=true, where that is a failure."""
    if ALERTMANAGER is None:
        missing("prometheus-alertmanager (Debian prometheus-alertmanager)")
    return ALERTMANAGER


@dataclass
class AlertmanagerServer:
    root: Path
    hook_url: str = ""  # where its route sends notifications (empty: a receiver that sends nowhere)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    config_file: Path | None = None  # an alertmanager.yml of the test's own (then hook_url is unused)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        if self.config_file is not None:
            return self.config_file
        receiver: dict[str, Any] = {"name": "hook"}
        if self.hook_url:
            receiver["webhook_configs"] = [{"url": self.hook_url, "send_resolved": True}]
        config = {"route": {"receiver": "hook", "group_by": ["alertname", "journey", "region"],
                            "group_wait": "100ms", "group_interval": "1s", "repeat_interval": "1h"},
                  "receivers": [receiver]}
        path = self.root / "alertmanager.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def start(self) -> None:
        binary = require_alertmanager()
        if self.proc is not None and self.proc.poll() is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "server.log").open("ab")
        try:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={self._config()}", f"--storage.path={self.root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        finally:
            log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {(self.root / 'server.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), _NO_PROXY.open(f"{self.url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"alertmanager not ready: {(self.root / 'server.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (GET /api/v2/alerts leaves out resolved ones)."""
        with _NO_PROXY.open(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            found: list[dict[str, Any]] = json.loads(resp.read())
            return found

    async def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], limit_s: float) -> list[dict[str, Any]]:
        """Poll the active alerts until `check` holds (bounded); the last list seen."""
        deadline = time.monotonic() + limit_s
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                seen = await asyncio.to_thread(self.alerts)
                if check(seen):
                    return seen
            await asyncio.sleep(0.1)
        return seen


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps every JSON body; `answers` are statuses to give first."""

    def __init__(self, validate: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.statuses: list[int] = []
        self.problems: list[str] = []
        self.validate = validate
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        status = self.answers.pop(0) if self.answers else 200
        try:
            body = await request.json()
            if self.validate is not None:
                self.validate(body)
        except Exception as e:  # a body the receiver refuses: recorded, answered 400
            self.problems.append(f"{type(e).__name__}: {e}")
            status = 400
        else:
            if status == 200:
                self.bodies.append(body)
        self.statuses.append(status)
        return web.json_response({"status": status}, status=status)

    async def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], limit_s: float) -> bool:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if check(self.bodies):
                return True
            await asyncio.sleep(0.05)
        return check(self.bodies)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
