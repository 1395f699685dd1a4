"""Real InfluxDB 1.x (`influxd`) and VictoriaMetrics servers for the exporter tests, plus a fault proxy.

Each server lives in a temp dir and listens on 127.0.0.1 ports picked once, so a test can stop it
and start it again on the same port and data dir (an outage). Ready checks poll `/ping` (204) or
`/health`; every wait is bounded. Teardown kills what was started, by its own pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web

from tests.support.components import needs

INFLUXD = shutil.which("influxd")
VICTORIA = shutil.which("victoria-metrics")

needs_influxd = needs(INFLUXD is not None, "influxd (Debian influxdb)")
needs_victoria = needs(VICTORIA is not None, "victoria-metrics")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, data: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def _wait_ready(url: str, ok: int, proc: subprocess.Popen[bytes], log: Path, limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            if _http("GET", url, timeout=1.0)[0] == ok:
                return
        time.sleep(0.02)
    raise RuntimeError(f"server not ready at {url} within {limit_s}s: {log.read_text()[-2000:]}")


@dataclass
class _Server:
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / "server.log").open("ab")
        try:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        finally:
            log.close()

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it lingers; the port and data stay."""
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


@dataclass
class InfluxServer(_Server):
    """influxd 1.x with meta/data/wal in `root`, HTTP on 127.0.0.1:port, RPC on another loopback port."""

    rpc_port: int = field(default_factory=free_port)
    auth: bool = False

    def _config(self) -> Path:
        conf = self.root / "influxdb.conf"
        conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.root}/meta"
  logging-enabled = false
[data]
  dir = "{self.root}/data"
  wal-dir = "{self.root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  pprof-enabled = false
""")
        return conf

    def start(self) -> None:
        assert INFLUXD is not None
        if self.running:
            return
        self.proc = self._spawn([INFLUXD, "run", "-config", str(self._config())])
        _wait_ready(f"{self.url}/ping", 204, self.proc, self.root / "server.log")

    def query(self, q: str, db: str = "", user: str = "", password: str = "") -> dict[str, Any]:
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        if user:
            params.update(u=user, p=password)
        status, body = _http("POST", f"{self.url}/query?" + urllib.parse.urlencode(params))
        if status != 200:
            raise RuntimeError(f"query {q!r}: {status} {body[:300]!r}")
        return dict(json.loads(body))

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """Every row of every series of the first statement, as dicts (columns -> values)."""
        res = self.query(q, db)["results"][0]
        if "error" in res:
            raise RuntimeError(res["error"])
        out = []
        for s in res.get("series", []):
            for values in s["values"]:
                out.append({**s.get("tags", {}), **dict(zip(s["columns"], values, strict=True))})
        return out

    def count(self, measurement: str, db: str, fld: str = "duration_ms") -> int:
        rows = self.rows(f'SELECT count("{fld}") FROM "{measurement}"', db)
        return int(rows[0]["count"]) if rows else 0

    async def wait_count(self, measurement: str, db: str, want: int, limit_s: float = 20.0) -> int:
        """Poll (without blocking the loop) until `want` points are there, bounded; the last count seen."""
        deadline = time.monotonic() + limit_s
        n = -1
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, OSError):
                n = await asyncio.to_thread(self.count, measurement, db)
                if n >= want:
                    return n
            await asyncio.sleep(0.1)
        return n


@dataclass
class VictoriaServer(_Server):
    """victoria-metrics single node, storage in `root`, speaking /api/v2/write."""

    def start(self) -> None:
        assert VICTORIA is not None
        if self.running:
            return
        self.proc = self._spawn([VICTORIA, f"-httpListenAddr=127.0.0.1:{self.port}",
                                 f"-storageDataPath={self.root}/data", "-search.latencyOffset=0s",
                                 "-loggerLevel=ERROR"])
        _wait_ready(f"{self.url}/health", 200, self.proc, self.root / "server.log")

    def export(self, match: str) -> list[dict[str, Any]]:
        _http("GET", f"{self.url}/internal/force_flush")
        status, body = _http("GET", f"{self.url}/api/v1/export?" + urllib.parse.urlencode({"match[]": match}))
        if status != 200:
            raise RuntimeError(f"export: {status} {body[:300]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    async def wait_export(self, match: str, want_values: int, limit_s: float = 15.0) -> list[dict[str, Any]]:
        """Poll (without blocking the loop) until the matched series hold `want_values` samples."""
        deadline = time.monotonic() + limit_s
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            got = await asyncio.to_thread(self.export, match)
            if sum(len(s["values"]) for s in got) >= want_values:
                return got
            await asyncio.sleep(0.1)
        return got


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[InfluxServer]:
    root = tmp_path / "influxd"
    root.mkdir()
    server = InfluxServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaServer]:
    root = tmp_path / "victoria"
    root.mkdir()
    server = VictoriaServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class FaultProxy:
    """aiohttp reverse proxy in front of a server; `faults` is a queue of answers to give instead.

    Each fault is consumed by one request to a write path: ("status", code, body, headers) answers
    directly; ("slow", seconds) delays then forwards. `sticky` keeps answering with one fault.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.faults: list[tuple[Any, ...]] = []
        self.sticky: tuple[Any, ...] | None = None
        self.requests: list[tuple[str, int]] = []  # (path, status answered)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = ClientSession(timeout=ClientTimeout(total=30), auto_decompress=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _is_write(self, request: web.Request) -> bool:
        return request.path.endswith("/write")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = None
        if self._is_write(request):
            fault = self.sticky or (self.faults.pop(0) if self.faults else None)
        if fault is not None and fault[0] == "status":
            _, code, text, headers = fault
            self.requests.append((request.path, code))
            return web.Response(status=code, text=text, headers=headers, content_type="application/json")
        if fault is not None and fault[0] == "slow":
            await asyncio.sleep(fault[1])
        assert self._session is not None
        # aiohttp's server already gunzipped the body: forward it plain
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "content-encoding")}
        async with self._session.request(request.method, self.target + request.path_qs, data=body,
                                         headers=headers) as resp:
            data = await resp.read()
            self.requests.append((request.path, resp.status))
            out_headers = {k: v for k, v in resp.headers.items()
                           if k.lower() in ("content-type", "content-encoding", "x-influxdb-error")}
            return web.Response(status=resp.status, body=data, headers=out_headers)


def exporter_spec(cfg: dict[str, Any]) -> Any:
    """An InfluxSpec parsed by the exporter's own from_config from a plain mapping (no problems)."""
    from exporters.influxdb.config import InfluxDBType
    from qos_agent.language.nodes import Node, Problems
    from qos_agent.model import Location
    from qos_agent.plugins.context import LoadContext

    loc = Location("journeys.yaml", 1, 1)
    node = Node({k: Node(v, loc) for k, v in {"type": "influxdb", **cfg}.items()}, loc)
    problems = Problems()
    spec = InfluxDBType.from_config(node, problems, LoadContext(Path("."), Path(".")))
    assert not problems, [str(p) for p in problems.sorted()]
    return spec


_SPOOL_ERA = {"depth": "spooled", "exported": "delivered", "export_errors": "failed_sends",
              "dead_letter": "dead_lettered", "last_error": "last_error"}


class SpoolView:
    """The old spool-era names (stats.depth, exported, export_errors, dead_letter) read from the core's
    SinkStats, so the InfluxDB tests read as they did before delivery moved into the core."""

    def __init__(self, durable: Any) -> None:
        self.durable = durable

    def __getattr__(self, name: str) -> Any:
        return getattr(self.durable.stats(), _SPOOL_ERA[name])


class SpooledExporter:
    """An InfluxDBExporter as the core runs it (DurableSink: store + delivery loop), spool-era names."""

    def __init__(self, durable: Any) -> None:
        self.durable = durable
        self.stats = SpoolView(durable)
        self.spool = self

    @property
    def path(self) -> Path:
        return Path(self.durable.store.path)

    async def write(self, points: Any) -> None:
        await self.durable.write(points)

    async def dead_letters(self) -> list[tuple[str, str]]:
        return list(await self.durable.dead_letters())

    async def close(self) -> None:
        await self.durable.close()


def make_exporter(state_dir: Path, cfg: dict[str, Any], backoff: float = 0.05, parallel: int = 2) -> Any:
    """An InfluxDBExporter wrapped as the pipeline wraps it, with fast backoff (tests); call inside a
    running loop. parallel=1 makes the number of requests per batch (and so which request meets
    which fault) deterministic."""
    from exporters.influxdb.sink import InfluxDBExporter
    from qos_agent.delivery.durable import DurableSink
    from qos_agent.plugins.sinks import ExporterEnv

    env = ExporterEnv(state_dir=state_dir, region="test", agent="t1")
    sink = InfluxDBExporter(exporter_spec({"flush_interval": "100ms", **cfg}), env)
    durable = DurableSink(sink, state_dir)
    durable.with_options(backoff_base_s=backoff, backoff_cap_s=backoff * 10, parallel=parallel)
    return SpooledExporter(durable)


def journey_points(n: int, start_ms: int | None = None, journey: str = "checkout") -> list[Any]:
    """n journey points of the metrics schema with distinct timestamps (one series), recent by default
    (VictoriaMetrics drops samples older than its retention)."""
    from qos_agent.model import Point

    if start_ms is None:
        start_ms = int(time.time() * 1000) - 3_600_000

    tags = (("agent", "t1"), ("journey", journey), ("kind", "journey"), ("region", "test"))
    return [Point("journey", tags, (("duration_ms", 10.0 + i % 100 / 8), ("success", i % 7 != 0),
                                    ("steps", 3), ("run_id", f"r{i}")), start_ms + i) for i in range(n)]
