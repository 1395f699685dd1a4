"""Throughput: HTTP steps/s on one client core, the whole agent path against a bare aiohttp loop.

The client process is pinned to core 0 and the target (the demo service's `GET /fast`, which answers
at once) to the other core. qos-agent: `Runner.run` of a one-step journey loaded from YAML
(templated URL, status and body assertions), every result submitted to a `Pipeline` whose real
SqliteExporter writes the points (its thread shares the pinned core); the wall time includes
draining the queue. A second row runs the same path with no sink, to show what the export costs, and
a third with `traceparent: false` (the ids still drawn and recorded, no header): what propagating
W3C Trace Context costs a step. With `--otlp`, a fourth adds the `otlp` sink beside SQLite, sending
the runs' spans to a real OTLP receiver (Arize Phoenix from `.venv-phoenix`, pinned to the target's
cores): what exporting traces costs a step (its spool and delivery share the client core).
Bare: a fresh connector and session per request, status checked, body read. All run `--workers`
requests in flight, in alternating rounds; the medians are compared, and so is round i of the agent
with round i of bare (a pair ran seconds apart: its ratio cancels the machine's drift). The client's
CPU is split into the event loop's thread and the others (the SQLite exporter's worker).
Run: `.venv/bin/python -m bench.bench_throughput [--seconds S] [--rounds N] [--workers W] [--profile] [--otlp]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import (
    Demo,
    Others,
    client_cpus,
    header,
    http_journeys_yaml,
    load_yaml,
    pin,
    proc_cpu_s,
    run,
    table,
    target_cpus,
)
from qos_agent.delivery.pipeline import Pipeline
from qos_agent.model import Journey
from qos_agent.runloop.runner import Runner
from tests.support.phoenix import phoenix

TARGET_RATIO = 0.70
TARGET_CPU = 1.4  # client CPU per step, × bare aiohttp's
SQLITE = "  - type: sqlite\n    path: results.db"


@dataclass
class Round:
    steps: int
    wall_s: float
    cpu_s: float
    target_cpu_s: float
    main_cpu_s: float  # the event loop's thread alone (the rest: the SQLite exporter's worker thread)

    @property
    def rate(self) -> float:
        return self.steps / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.steps * 1e6

    @property
    def other_threads_us(self) -> float:
        return (self.cpu_s - self.main_cpu_s) / self.steps * 1e6


async def closed_loop(one: Callable[[], Awaitable[None]], workers: int, seconds: float,
                      target_pid: int, drain: Callable[[], Awaitable[None]] | None = None) -> Round:
    """`workers` loops each doing `one` back to back until `seconds` pass; counts completions."""
    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await one()
            done += 1

    cpu0, tcpu0, t0, main0 = time.process_time(), proc_cpu_s(target_pid), time.perf_counter(), time.thread_time()
    stop_at = t0 + seconds
    async with asyncio.timeout(seconds + 30):
        await asyncio.gather(*(worker() for _ in range(workers)))
        if drain is not None:
            await drain()
    wall = time.perf_counter() - t0
    return Round(done, wall, time.process_time() - cpu0, proc_cpu_s(target_pid) - tcpu0, time.thread_time() - main0)


class Agent:
    """The agent's path: runner → results → points → bounded queue → SQLite."""

    def __init__(self, runner: Runner, journey: Journey, pipeline: Pipeline) -> None:
        self.runner, self.journey, self.pipeline = runner, journey, pipeline

    async def one(self) -> None:
        results = await self.runner.run(self.journey)
        if not results[-1].outcome.ok:
            raise RuntimeError(f"qos-agent run failed: {results[-1].error_message}")
        self.pipeline.submit(results)

    async def drain(self) -> None:
        for sink in self.pipeline.sinks:
            await sink.queue.join()


def bare(url: str) -> Callable[[], Awaitable[None]]:
    async def one() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(use_dns_cache=False)) as session, \
                session.get(url) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"bare aiohttp got {resp.status}")
    return one


async def main(seconds: float, rounds: int, workers: int, profile: bool, otlp: bool) -> None:
    pin(0, client_cpus())
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp, Demo(target_cpus()) as demo, \
            contextlib.ExitStack() as stack:
        assert demo.proc is not None
        others = Others([demo.proc.pid])
        url = f"{demo.url}/fast"
        config = load_yaml(http_journeys_yaml(url, 1, exporters=SQLITE,
                                              expect='{status: 200, body_contains: "ok"}'), Path(tmp))
        runner = Runner(config)
        pipeline = Pipeline.from_config(config, runner.redact)
        pipeline.start()
        await runner.probes.start(config.journeys)
        agent = Agent(runner, config.journeys[0], pipeline)
        quiet_yaml = http_journeys_yaml(url, 1, exporters=SQLITE, expect='{status: 200, body_contains: "ok"}')
        quiet = load_yaml(quiet_yaml.replace("agent:\n", "agent:\n  traceparent: false\n", 1), Path(tmp) / "off")
        quiet_runner = Runner(quiet)
        quiet_pipeline = Pipeline.from_config(quiet, quiet_runner.redact)
        quiet_pipeline.start()
        await quiet_runner.probes.start(quiet.journeys)
        no_header = Agent(quiet_runner, quiet.journeys[0], quiet_pipeline)
        traced: Agent | None = None
        if otlp:
            px = stack.enter_context(phoenix())
            pin(px.pid, target_cpus())
            sinks = f'{SQLITE}\n  - {{type: otlp, url: "{px.url}/v1/traces"}}'
            expect = '{status: 200, body_contains: "ok"}'
            with_otlp = load_yaml(http_journeys_yaml(url, 1, exporters=sinks, expect=expect), Path(tmp) / "otlp")
            traced_runner = Runner(with_otlp)
            traced = Agent(traced_runner, with_otlp.journeys[0], Pipeline.from_config(with_otlp, traced_runner.redact))
            traced.pipeline.start()
            await traced_runner.probes.start(with_otlp.journeys)
        no_sink = Pipeline([])  # the same path up to points, no sink: shows what the SQLite write costs
        no_export = Agent(runner, config.journeys[0], no_sink)
        plain = bare(url)
        try:
            await closed_loop(agent.one, workers, 0.5, demo.proc.pid, agent.drain)  # warm up
            await closed_loop(plain, workers, 0.5, demo.proc.pid)
            results: dict[str, list[Round]] = {"qos-agent": [], "qos-agent, no exporter": [],
                                               "qos-agent, traceparent off": [], "bare aiohttp": []}
            if traced is not None:
                results["qos-agent + otlp sink"] = []
            for _ in range(rounds):
                results["qos-agent"].append(await closed_loop(agent.one, workers, seconds, demo.proc.pid,
                                                              agent.drain))
                results["qos-agent, no exporter"].append(await closed_loop(no_export.one, workers, seconds,
                                                                           demo.proc.pid))
                results["qos-agent, traceparent off"].append(await closed_loop(no_header.one, workers, seconds,
                                                                               demo.proc.pid, no_header.drain))
                results["bare aiohttp"].append(await closed_loop(plain, workers, seconds, demo.proc.pid))
                if traced is not None:
                    results["qos-agent + otlp sink"].append(await closed_loop(traced.one, workers, seconds,
                                                                              demo.proc.pid, traced.drain))
            if profile:
                prof = cProfile.Profile(time.process_time)
                prof.enable()
                await closed_loop(agent.one, workers, seconds, demo.proc.pid, agent.drain)
                prof.disable()
            note = others.note()
        finally:
            await runner.close()
            await pipeline.close()
            await quiet_runner.close()
            await quiet_pipeline.close()
            if traced is not None:
                await traced.runner.close()
                await traced.pipeline.close()
        exported = pipeline.total().delivered
    report(results, workers, seconds, exported, note)
    if profile:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(30)
        print("\ncProfile of one qos-agent round (top 30 by own CPU time):\n" + buf.getvalue())


def report(results: dict[str, list[Round]], workers: int, seconds: float, exported: int, note: str) -> None:
    rows, med = [], {}
    for name, rs in results.items():
        rate = statistics.median(r.rate for r in rs)
        cpu = statistics.median(r.cpu_us for r in rs)
        tgt = statistics.median(r.target_cpu_s / r.wall_s * 100 for r in rs)
        med[name] = (rate, cpu)
        others = statistics.median(r.other_threads_us for r in rs)
        rows.append([name, " ".join(f"{r.rate:,.0f}" for r in rs), f"{rate:,.0f}", f"{cpu:,.0f}",
                     f"{cpu - others:,.0f} + {others:,.0f}", f"{tgt:.0f}%"])
    agent, plain, no_export = med["qos-agent"], med["bare aiohttp"], med["qos-agent, no exporter"]
    # Rounds alternate, so round i of each prober ran within seconds of the others: the ratio of a pair
    # cancels the machine's slow drift (this VM's CPU time per step moves by ±15 % over minutes).
    pairs = sorted(a.cpu_us / b.cpu_us for a, b in zip(results["qos-agent"], results["bare aiohttp"], strict=True))
    rates = sorted(a.rate / b.rate for a, b in zip(results["qos-agent"], results["bare aiohttp"], strict=True))
    print(f"one client core, {workers} in flight, rounds of {seconds:g} s alternating; "
          f"the agent's rounds include draining {exported:,} points into SQLite\n")
    print(table(["prober", "steps/s per round", "median steps/s", "client CPU µs/step",
                 "loop thread + other threads", "target CPU"], rows))
    r = agent[0] / plain[0]
    print(f"\nqos-agent / bare aiohttp: {r * 100:.0f} % of the steps/s (target ≥ {TARGET_RATIO * 100:.0f} %: "
          f"{'met' if r >= TARGET_RATIO else 'NOT met'}); by client CPU per step: {plain[1] / agent[1] * 100:.0f} %")
    q1, q3 = len(pairs) // 4, (3 * len(pairs)) // 4
    paired = statistics.median(pairs)
    print(f"paired rounds (agent round i / bare round i): client CPU per step {paired:.2f}× bare's "
          f"(quartiles {pairs[q1]:.2f}–{pairs[q3]:.2f}; target ≤ {TARGET_CPU:.1f}×: "
          f"{'met' if paired <= TARGET_CPU else 'NOT met'}), steps/s {statistics.median(rates) * 100:.0f} % "
          f"(quartiles {rates[q1] * 100:.0f}–{rates[q3] * 100:.0f} %)")
    print(f"without the SQLite exporter: {no_export[0] / plain[0] * 100:.0f} % of the steps/s; "
          f"the export costs {agent[1] - no_export[1]:,.0f} µs of client CPU per step")
    header_pairs = sorted(a.cpu_us / b.cpu_us for a, b in
                          zip(results["qos-agent"], results["qos-agent, traceparent off"], strict=True))
    off = med["qos-agent, traceparent off"]
    print(f"the traceparent header: {agent[1] - off[1]:+,.0f} µs of client CPU per step by medians; paired rounds "
          f"(header on / off) {(statistics.median(header_pairs) - 1) * 100:+.1f} % "
          f"(quartiles {(header_pairs[q1] - 1) * 100:+.1f} to {(header_pairs[q3] - 1) * 100:+.1f} %; target ≤ +5 %)")
    if "qos-agent + otlp sink" in results:
        traced_pairs = sorted(a.cpu_us / b.cpu_us for a, b in
                              zip(results["qos-agent + otlp sink"], results["qos-agent"], strict=True))
        print(f"the otlp sink: {med['qos-agent + otlp sink'][1] - agent[1]:+,.0f} µs of client CPU per step by "
              f"medians; paired rounds (with / without it) {(statistics.median(traced_pairs) - 1) * 100:+.1f} % "
              f"(quartiles {(traced_pairs[q1] - 1) * 100:+.1f} to {(traced_pairs[q3] - 1) * 100:+.1f} %)")
    print(note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per prober")
    parser.add_argument("--workers", type=int, default=32, help="requests in flight")
    parser.add_argument("--profile", action="store_true", help="also cProfile one qos-agent round")
    parser.add_argument("--otlp", action="store_true", help="also a round with the otlp sink (Arize Phoenix)")
    args = parser.parse_args()
    header("Throughput (spine)", "bench.bench_throughput", sys.argv[1:])
    if (os.cpu_count() or 1) < 2:
        print("one CPU only: client and target share it; the ratio still holds, the absolute figures do not")
    run(main(args.seconds, args.rounds, args.workers, args.profile, args.otlp))
