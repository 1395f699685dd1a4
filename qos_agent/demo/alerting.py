"""`qos-agent demo --alertmanager`: the demo's disruption reaches a real Alertmanager.

`local` starts Debian's `prometheus-alertmanager` on a free loopback port with a throwaway config
(state under the demo's state_dir); a URL uses one you run. The demo's agents get an `alertmanager`
sink, and `AlertWatch` polls `GET /api/v2/alerts` so the story can say when the alert fires and when
Alertmanager resolves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from qos_agent.errors import SetupError

CONFIG = {"route": {"receiver": "demo", "group_by": ["alertname", "journey", "region"], "group_wait": "1s",
                    "group_interval": "5s", "repeat_interval": "1h"}, "receivers": [{"name": "demo"}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalAlertmanager:
    """Debian's prometheus-alertmanager on 127.0.0.1, for the length of the demo."""

    root: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise SetupError("prometheus-alertmanager is not installed (scripts/install-system-deps.sh installs it; "
                             "or give --alertmanager URL)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "alertmanager.yml"
        config.write_text(json.dumps(CONFIG))
        with (self.root / "alertmanager.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.path={self.root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            for _ in range(300):
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with http.get(f"{self.url}/-/ready") as resp:
                        if resp.status == 200:
                            return self.url
                await asyncio.sleep(0.05)
        self.stop()
        raise SetupError(f"prometheus-alertmanager did not start (see {self.root / 'alertmanager.log'})")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class AlertWatch:
    """Which JourneyDisruption alerts Alertmanager holds active now."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    async def active(self) -> list[dict[str, str]]:
        """Labels of the active JourneyDisruption alerts ([] when Alertmanager cannot be asked)."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http, \
                    http.get(f"{self.url}/api/v2/alerts", params={"filter": 'alertname="JourneyDisruption"'}) as resp:
                alerts = await resp.json() if resp.status == 200 else []
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return []
        return [dict(a.get("labels", {})) for a in alerts if isinstance(a, dict)]
