"""Helpers for the agent endpoint and live-reload tests: a real `qos-agent run` process.

    with AgentProcess(config_path, cwd=tmp_path) as agent:   # waits for the endpoint's address
        body = agent.healthz()                                 # (status, JSON) from /healthz
        agent.hup()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ENDPOINT_LINE = "health and metrics on "


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with _NO_PROXY.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        e.close()
        return e.code, body


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value}, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(metrics_text: str, name: str, **labels: str) -> float | None:
    """The one sample with this name whose labels include `labels` (None if there is none)."""
    found = [v for (n, ls), v in samples(metrics_text).items() if n == name and set(labels.items()) <= set(ls)]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def total(metrics_text: str, name: str, **labels: str) -> float | None:
    """The sum of every sample with this name whose labels include `labels` (None if there is none):
    a real agent's counters are split by `lagged`, which a test of something else adds up."""
    found = [v for (n, ls), v in samples(metrics_text).items() if n == name and set(labels.items()) <= set(ls)]
    return sum(found) if found else None


class AgentProcess:
    """`python -m qos_agent run FILE` in a subprocess; `url` is its endpoint (read from its log)."""

    def __init__(self, config: Path, *extra: str, cwd: Path, start_timeout: float = 20.0,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.extra = extra
        self.env = env or {}  # added to this process's environment
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.url = ""
        self.log_path = cwd / "agent.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def __enter__(self) -> AgentProcess:
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "qos_agent", "run", str(self.config), *self.extra],
                cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **self.env})
        try:
            line = wait_for(self._endpoint_line, self.start_timeout, "the agent's endpoint line")
            self.url = line.split(ENDPOINT_LINE, 1)[1].split("/healthz", 1)[0]
        except BaseException:
            self.stop()
            raise
        return self

    def _endpoint_line(self) -> str | None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"agent exited with {self._proc.returncode}:\n{self.log()}")
        return next((x for x in self.log().splitlines() if ENDPOINT_LINE in x), None)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def healthz(self) -> tuple[int, dict[str, Any]]:
        status, body = get(self.url + "/healthz")
        return status, json.loads(body)

    def metrics(self) -> str:
        status, body = get(self.url + "/metrics")
        assert status == 200, body
        return body

    def pause(self, seconds: float) -> None:
        """Stop the agent process (SIGSTOP) for `seconds`, then let it go on: its own event loop is late
        by that much, as on a starved host, so the steps in flight then come out `lagged`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self._proc.send_signal(signal.SIGCONT)

    def hup(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)

    def kill(self, timeout: float = 20.0) -> int | None:
        """SIGKILL (`kill -9`): no stop, no flush; what the process wrote to disk is all that is left."""
        proc, self._proc = self._proc, None
        if proc is None:
            return self.returncode
        proc.send_signal(signal.SIGKILL)
        self.returncode = proc.wait(timeout)
        return self.returncode

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (the graceful stop), then SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.returncode = proc.wait(timeout)
        return self.returncode

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
