"""Shared helpers of the spine's benchmarks: the target and peer processes, loads, stats, tables.

The target (the demo service) and blackbox_exporter each run in their own process, so the client's
event loop never shares a loop (or, when pinned, a core) with the server it measures. Every helper
binds 127.0.0.1 only and is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import aiohttp

from qos_agent.config.loader import load_config
from qos_agent.model import Config
from qos_agent.runloop import loops

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
BLACKBOX = "prometheus-blackbox-exporter"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ----- the event loop ----------------------------------------------------------------------------

def bench_loop() -> str:
    """The event loop every prober of this bench run shares: `QOS_BENCH_LOOP` = asyncio (default) or
    uvloop. `bench.run_all` runs each bench once per loop; agents a bench starts get `agent.loop` set so."""
    loop = os.environ.get("QOS_BENCH_LOOP", "asyncio")
    if loop not in ("asyncio", "uvloop"):
        raise SystemExit(f"QOS_BENCH_LOOP={loop!r}: use asyncio or uvloop")
    return loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the bench's loop (`bench_loop()`)."""
    return loops.run(main, bench_loop())


# ----- processes -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin a process to CPUs where there are that many; a no-op on a 1-CPU machine."""
    if cpus and all(c < (os.cpu_count() or 1) for c in cpus):
        os.sched_setaffinity(pid, cpus)


def client_cpus() -> set[int] | None:
    """Core 0 for the client, when there are two or more cores."""
    return {0} if (os.cpu_count() or 1) >= 2 else None


def target_cpus() -> set[int] | None:
    """Every core but 0 for the target, when there are two or more cores."""
    n = os.cpu_count() or 1
    return set(range(1, n)) if n >= 2 else None


def _http_ok(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=1) as r:
            return 200 <= int(r.status) < 300
    except OSError:
        return False


class Demo:
    """`python -m qos_agent.demo --port 0` in its own process (optionally pinned); `url` once started."""

    def __init__(self, cpus: set[int] | None = None, start_timeout_s: float = 15.0) -> None:
        self.cpus = cpus
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self._err: IO[str] | None = None

    def __enter__(self) -> Demo:
        self._err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qos_agent.demo", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._err, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            pin(self.proc.pid, self.cpus)
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], self.start_timeout_s)
            line = self.proc.stdout.readline() if ready else ""
            if not line.startswith("demo service on "):
                self._err.seek(0)
                raise RuntimeError(f"demo service did not start: {line!r} {self._err.read()}")
            self.url = line.removeprefix("demo service on ").strip()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None
        if self._err is not None:
            self._err.close()
            self._err = None

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


class Blackbox:
    """Prometheus' blackbox_exporter on 127.0.0.1 with module `http_2xx`; `probe(url)` → seconds."""

    def __init__(self, cpus: set[int] | None = None, start_timeout_s: float = 10.0,
                 config: str = BLACKBOX_CONFIG) -> None:
        self.cpus = cpus
        self.start_timeout_s = start_timeout_s
        self.config = config
        self.base = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which(BLACKBOX) is not None

    def __enter__(self) -> Blackbox:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-blackbox-")
        cfg = Path(self._dir.name) / "blackbox.yml"
        cfg.write_text(self.config)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [BLACKBOX, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        pin(self.proc.pid, self.cpus)
        deadline = time.monotonic() + self.start_timeout_s
        while not _http_ok(self.base + "/-/healthy"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("blackbox_exporter did not start")
            time.sleep(0.05)
        return self

    def version(self) -> str:
        out = subprocess.run([BLACKBOX, "--version"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).splitlines()
        return first[0].split("version", 1)[-1].split("(")[0].strip() if first else "?"

    async def probe(self, session: aiohttp.ClientSession, target: str, module: str = "http_2xx") -> float:
        """One /probe; probe_duration_seconds in ms (raises when the probe did not succeed)."""
        async with session.get(self.base + "/probe", params={"module": module, "target": target}) as r:
            text = await r.text()
        values = {}
        for line in text.splitlines():
            if line.startswith(("probe_duration_seconds ", "probe_success ")):
                name, value = line.split()
                values[name] = float(value)
        if values.get("probe_success") != 1.0:
            raise RuntimeError(f"blackbox probe of {target} failed")
        return values["probe_duration_seconds"] * 1000

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None, timeout_s: float = 5.0) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)
    if proc.stdout is not None:
        proc.stdout.close()


# ----- the agent's configuration ----------------------------------------------------------------

def http_journeys_yaml(url: str, n: int = 1, interval: str = "60s", state_dir: str = "state",
                       exporters: str = "", concurrency: int = 1000, listen: str = "off",
                       expect: str = "{status: 200}", loop: str | None = None) -> str:
    """journeys.yaml with `n` one-step HTTP journeys GETting `url` (a templated URL), expecting `expect`."""
    lines = [
        "version: 1",
        "agent:",
        "  region: bench",
        "  name: bench",
        f"  interval: {interval}",
        f"  concurrency: {concurrency}",
        f"  state_dir: {state_dir}",
        f"  listen: {listen}",
        f"  loop: {loop or bench_loop()}",
        "defaults: {timeout: 10s, headers: {User-Agent: qos-agent-bench}}",
        f"variables: {{target: \"{url}\"}}",
    ]
    if exporters:
        lines += ["exporters:", exporters]
    lines.append("journeys:")
    for i in range(n):
        lines += [
            f"  - name: j{i:04d}",
            "    steps:",
            "      - name: get",
            '        http: {url: "{{ target }}"}',
            f"        expect: {expect}",
        ]
    return "\n".join(lines) + "\n"


def load_yaml(text: str, directory: Path, env: Mapping[str, str] | None = None) -> Config:
    """The real loader on YAML text (written to `directory`/journeys.yaml); `${VAR}` from `env` only."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "journeys.yaml"
    path.write_text(text)
    return load_config(path, env={} if env is None else env)


# ----- loads -------------------------------------------------------------------------------------

async def one_at_a_time(fn: Callable[[], Awaitable[float]], n: int) -> list[float]:
    return [await fn() for _ in range(n)]


async def open_loop(fn: Callable[[], Awaitable[float]], rate: float, seconds: float,
                    deadline_s: float = 30.0) -> tuple[list[float], float]:
    """Start one call every 1/rate s for `seconds`; returns the results and the worst start lag (ms)."""
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    t0 = loop.time() + 0.05
    tasks: list[asyncio.Task[float]] = []
    worst = 0.0
    for i in range(n):
        at = t0 + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        worst = max(worst, (loop.time() - at) * 1000)
        tasks.append(asyncio.ensure_future(fn()))
    async with asyncio.timeout(deadline_s):
        return list(await asyncio.gather(*tasks)), worst


async def bursts(fn: Callable[[], Awaitable[float]], size: int, repeats: int,
                 pause_s: float = 0.5, deadline_s: float = 30.0) -> list[float]:
    """`size` calls started at once, `repeats` times with a pause between."""
    out: list[float] = []
    for _ in range(repeats):
        async with asyncio.timeout(deadline_s):
            out += await asyncio.gather(*(fn() for _ in range(size)))
        await asyncio.sleep(pause_s)
    return out


# ----- figures -----------------------------------------------------------------------------------

def pct(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); nan for no samples."""
    if not xs:
        return math.nan
    ordered = sorted(xs)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def ratio(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return "-"
    return f"{a / b:.2f}×"


def fmt(x: float, digits: int = 1) -> str:
    return "-" if not math.isfinite(x) else f"{x:.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table (readable as printed, pasteable into docs/benchmarks.md)."""
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def header(title: str, module: str, argv: Sequence[str] = ()) -> None:
    """What every bench prints first: what, the command, when, and the machine's state."""
    cmd = " ".join([".venv/bin/python", "-m", module, *argv])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## {title}\ncommand: {cmd}\ndate: {now}; {os.cpu_count()} CPUs; Python "
          f"{sys.version.split()[0]}; aiohttp {aiohttp.__version__}; event loop: {bench_loop()}; "
          f"load average before: {load_average()}\n",
          flush=True)


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has been busy (all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _reaped_children_s() -> float:
    """CPU of this process's children (and theirs) that have exited and been waited for."""
    t = os.times()
    return t.children_user + t.children_system


class Others:
    """How much CPU the rest of the machine (not the bench's own processes) used while it ran.

    Own = this process, the live processes named, and every descendant already reaped (a live
    grandchild, such as a browser of a still-running agent, would count as other work).
    """

    def __init__(self, pids: Iterable[int] = ()) -> None:
        self.pids = {os.getpid(), *pids}
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_s()
        self.own0 = self._own()

    def _own(self) -> float:
        return sum(proc_cpu_s(p) for p in self.pids) + _reaped_children_s()

    def add(self, pid: int) -> None:
        self.pids.add(pid)
        self.own0 += proc_cpu_s(pid)

    def cores(self) -> float:
        """Average number of cores busy with other work since the start."""
        wall = max(1e-9, time.monotonic() - self.t0)
        own = self._own() - self.own0
        return max(0.0, (machine_busy_s() - self.busy0 - own) / wall)

    def note(self) -> str:
        return (f"other work on the machine during this bench: {self.cores():.2f} of {os.cpu_count()} cores busy "
                f"on average (an upper bound: helpers a browser re-parents away count here); load average after: "
                f"{load_average()}")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A /proc/PID/status memory field in kB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
