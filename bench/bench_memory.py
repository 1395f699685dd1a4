"""Memory: RSS of a real `qos-agent run` process with 500 configured HTTP journeys running.

Two agents run side by side against the demo service (its own process): one with `--journeys`
one-step HTTP journeys (every `--interval`, so all of them have started within the window), one with a
single journey (the fixed cost of the process: interpreter, aiohttp, typer, SQLite). VmRSS is read from
/proc/PID/status every 0.25 s; printed: peak, steady (median of the last third), VmHWM, and the cost
per journey.
Run: `.venv/bin/python -m bench.bench_memory [--journeys N] [--interval 30s] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Demo, Others, header, http_journeys_yaml, rss_kb, table

TARGET_MB = 80.0


@dataclass
class Watched:
    label: str
    journeys: int
    proc: subprocess.Popen[bytes]
    log: Path
    samples: list[tuple[float, int]] = field(default_factory=list)
    hwm_kb: int = 0
    runs: int = 0
    failed: int = 0

    def count_runs(self) -> None:
        """Journey runs the agent stored (proof that the journeys really ran)."""
        db = self.log.parent / "state" / "qos-results.db"
        with sqlite3.connect(db) as conn:
            self.runs, self.failed = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(success = 0), 0) FROM points "
                "WHERE measurement = 'journey'").fetchone()
        conn.close()

    def sample(self, t: float) -> None:
        if self.proc.poll() is None:
            kb = rss_kb(self.proc.pid)
            if kb:
                self.samples.append((t, kb))
            self.hwm_kb = max(self.hwm_kb, rss_kb(self.proc.pid, "VmHWM"))

    def figures(self, seconds: float) -> tuple[float, float]:
        peak = max(kb for _, kb in self.samples) / 1024
        tail = [kb for t, kb in self.samples if t >= seconds * 2 / 3] or [kb for _, kb in self.samples]
        return peak, statistics.median(tail) / 1024


def agent_command() -> list[str]:
    script = Path(sys.executable).parent / "qos-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "qos_agent"]


def start_agent(tmp: Path, label: str, url: str, journeys: int, interval: str, seconds: float) -> Watched:
    directory = tmp / label
    directory.mkdir()
    path = directory / "journeys.yaml"
    path.write_text(http_journeys_yaml(url, journeys, interval=interval, concurrency=50))
    log = directory / "agent.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*agent_command(), "run", str(path), "--duration", f"{seconds:g}s"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=directory)
    return Watched(label, journeys, proc, log)


def main(journeys: int, interval: str, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, Demo() as demo:
        assert demo.proc is not None
        others = Others([demo.proc.pid])
        url = f"{demo.url}/fast"
        agents = [start_agent(Path(tmp), "many", url, journeys, interval, seconds),
                  start_agent(Path(tmp), "one", url, 1, interval, seconds)]
        for a in agents:
            others.add(a.proc.pid)
        t0 = time.monotonic()
        deadline = t0 + seconds + 30
        while any(a.proc.poll() is None for a in agents) and time.monotonic() < deadline:
            for a in agents:
                a.sample(time.monotonic() - t0)
            time.sleep(0.25)
        note = others.note()
        for a in agents:
            if a.proc.poll() is None:
                a.proc.kill()
            code = a.proc.wait(10)
            if code != 0 or not a.samples:
                print(f"agent '{a.label}' exited {code}:\n{a.log.read_text()[-2000:]}")
                raise SystemExit(1)
            a.count_runs()
    rows = []
    figs = {a.label: a.figures(seconds) for a in agents}
    for a in agents:
        peak, steady = figs[a.label]
        rows.append([f"qos-agent run, {a.journeys} journey{'s' if a.journeys != 1 else ''}",
                     f"{a.runs:,} ({a.failed} failed)", f"{peak:.1f}", f"{steady:.1f}", f"{a.hwm_kb / 1024:.1f}"])
    (peak_many, steady_many), (_, steady_one) = figs["many"], figs["one"]
    print(f"`qos-agent run --duration {seconds:g}s`, one-step HTTP journeys every {interval} against the demo's "
          f"/fast, default SQLite store; RSS in MB\n")
    print(table(["process", "runs stored", "peak RSS", "steady RSS", "VmHWM"], rows))
    per = (steady_many - steady_one) / max(1, journeys - 1) * 1024
    print(f"\ncost per configured journey: {per:.1f} kB (steady, {journeys} vs 1 journey)")
    print(f"peak {peak_many:.1f} MB with {journeys} journeys (target ≤ {TARGET_MB:g} MB: "
          f"{'met' if peak_many <= TARGET_MB else 'NOT met'})")
    print(note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--journeys", type=int, default=500)
    parser.add_argument("--interval", default="30s")
    parser.add_argument("--seconds", type=float, default=45.0, help="how long the agents run (default 45)")
    args = parser.parse_args()
    header("Memory (spine)", "bench.bench_memory", sys.argv[1:])
    if not os.path.exists("/proc/self/status"):
        raise SystemExit("needs /proc")
    main(args.journeys, args.interval, args.seconds)
