"""Honest under load: a real agent driven to 2× what its core can run, with and without shedding.

The agent (this process, pinned to core 0) runs one-step HTTP journeys against the demo's `/fast`
(its own process, on the other core), storing into SQLite. A calm phase first measures the agent's
CPU per run and its calm latency; the journeys' `slo.latency` is then set to 4× the calm p99 (at
least 100 ms) and the overload phase schedules 2× the runs/s one core can do, for `--seconds`:
- shedding on (the agent as shipped): runs shed, share of samples lagged, latency of unlagged and
  lagged runs, latency disruptions the evaluator opened (target: 0);
- shedding off (the scheduler never sheds; samples still marked): the same figures;
- for each, the disruptions an evaluator that ignored the `lagged` mark would have opened: what the
  agent's own congestion would have reported as the target's slowness.
Run: `.venv/bin/python -m bench.bench_overload [--seconds S]` (QOS_BENCH_LOOP picks the loop).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    Demo,
    Others,
    bench_loop,
    client_cpus,
    fmt,
    header,
    load_yaml,
    pct,
    pin,
    proc_cpu_s,
    run,
    table,
    target_cpus,
)
from qos_agent.model import JourneyResult
from qos_agent.quality.evaluator import Evaluator
from qos_agent.runloop.agent import Agent

JOURNEY = """\
  - name: j{i:04d}
    interval: {interval}
    slo: {{latency: {slo_ms}ms}}
    steps:
      - name: get
        http: {{url: "{{{{ target }}}}"}}
        expect: {{status: 200}}
"""


def config_yaml(url: str, journeys: int, interval: str, slo_ms: int, loop: str) -> str:
    head = ("version: 1\nagent: {region: bench, name: bench, concurrency: 2000, state_dir: state, listen: off, "
            f"loop: {loop}}}\n"
            "defaults: {timeout: 10s, disruption: {min_runs: 10}}\n"
            f"variables: {{target: \"{url}/fast\"}}\njourneys:\n")
    return head + "".join(JOURNEY.format(i=i, interval=interval, slo_ms=slo_ms) for i in range(journeys))


@dataclasses.dataclass
class Phase:
    label: str
    results: list[JourneyResult]
    shed: int
    started: int
    opened: int
    cpu_s: float
    wall_s: float


async def run_phase(label: str, yaml: str, directory: Path, seconds: float, shedding: bool) -> Phase:
    agent = Agent(load_yaml(yaml, directory))
    if not shedding:
        agent.scheduler.overloaded = lambda: False
    results: list[JourneyResult] = []
    agent.listeners.append(lambda rs, _: results.extend(r for r in rs if r.final))
    cpu0, t0 = proc_cpu_s(os.getpid()), time.monotonic()
    await agent.run(duration_s=seconds, handle_signals=False)
    opened = len(agent.evaluator.history) + len(agent.evaluator.open_disruptions())
    return Phase(label, results, agent.scheduler.stats.shed, agent.scheduler.stats.started, opened,
                 proc_cpu_s(os.getpid()) - cpu0, time.monotonic() - t0)


def unmarked_opens(phase: Phase, yaml: str, directory: Path) -> int:
    """Latency disruptions an evaluator that ignored the `lagged` mark would have opened."""
    config = load_yaml(yaml, directory)
    ev = Evaluator(config.journeys, "bench")
    for r in sorted(phase.results, key=lambda r: r.start_ms):
        ev.observe([dataclasses.replace(r, lagged=False)])
    return len(ev.history) + len(ev.open_disruptions())


async def main(seconds: float) -> None:
    pin(os.getpid(), client_cpus())
    loop = bench_loop()
    with Demo(cpus=target_cpus()) as demo, tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        others = Others([demo.proc.pid] if demo.proc else [])
        calm_yaml = config_yaml(demo.url, 10, "200ms", 10_000, loop)
        calm = await run_phase("calm: 10 journeys every 200 ms", calm_yaml, Path(tmp) / "calm", 8.0, True)
        runs = max(1, len(calm.results))
        cpu_per_run = calm.cpu_s / runs
        calm_ms = sorted(r.duration_ms for r in calm.results)
        slo_ms = int(max(100.0, 4 * pct(calm_ms, 0.99)))
        rate = 2.0 / cpu_per_run  # runs/s needing two cores' worth of this process's CPU
        journeys = max(1, int(rate * 0.2))  # each every 200 ms: enough runs per journey for the latency rule
        over_yaml = config_yaml(demo.url, journeys, "200ms", slo_ms, loop)
        phases = [calm]
        for label, shedding in (("2× overload, shedding on", True), ("2× overload, shedding off", False)):
            phases.append(await run_phase(label, over_yaml, Path(tmp) / label.split(",")[1].strip().replace(" ", "-"),
                                          seconds, shedding))
        unmarked = [unmarked_opens(p, over_yaml if p is not calm else calm_yaml, Path(tmp) / "re") for p in phases]
        note = others.note()
    print(f"calm: {cpu_per_run * 1e6:,.0f} µs of agent CPU per run; p99 {pct(calm_ms, 0.99):.1f} ms → "
          f"slo.latency {slo_ms} ms; overload: {journeys} journeys every 200 ms = {journeys * 5:,} runs/s planned "
          f"(2× one core), {seconds:g} s\n")
    rows = []
    for p, blind in zip(phases, unmarked, strict=True):
        lagged = [r for r in p.results if r.lagged]
        clean = sorted(r.duration_ms for r in p.results if not r.lagged)
        dirty = sorted(r.duration_ms for r in lagged)
        share = len(lagged) / len(p.results) if p.results else 0.0
        rows.append([p.label, f"{p.started:,}", f"{p.shed:,}", f"{len(p.results):,}", f"{share:.1%}",
                     f"{fmt(pct(clean, 0.5))} / {fmt(pct(clean, 0.99))}",
                     f"{fmt(pct(dirty, 0.5))} / {fmt(pct(dirty, 0.99))}", str(p.opened), str(blind),
                     f"{p.cpu_s / p.wall_s:.2f}"])
    print(table(["phase", "runs started", "shed", "results", "lagged", "unlagged ms p50 / p99",
                 "lagged ms p50 / p99", "disruptions opened", "… if lagged were ignored",
                 "agent cores"], rows))
    print("\n" + note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each overload phase")
    args = parser.parse_args()
    header("Overload: lagged samples and shed runs (issue 17)", "bench.bench_overload", sys.argv[1:])
    if sys.platform != "linux":
        raise SystemExit("needs Linux (/proc, CPU pinning)")
    run(main(args.seconds))
