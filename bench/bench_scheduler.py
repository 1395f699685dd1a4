"""Scheduler lag at 1,000 journey runs per minute: the real Scheduler, Runner and SQLite pipeline.

`--journeys` one-step HTTP journeys (GET the demo service's `/fast`, in its own process) each every
`journeys × 60 / 1000` seconds, so together they start 1,000 runs a minute, spread by the
scheduler's own random offsets and jitter; every result goes through the Pipeline to a real
SqliteExporter, as in the agent. Printed: the scheduler's lag (how late each run started against
its plan) and the event loop's lag (a 10 ms sleep's overshoot, sampled all along).
Peer in the same run: a bare asyncio loop doing the same requests at the same planned times
(`loop.call_at` a fresh-session aiohttp GET), its lag measured the same way.
Run: `.venv/bin/python -m bench.bench_scheduler [--journeys N] [--seconds S] [--rate PER_MINUTE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

import aiohttp

from bench.common import Demo, Others, fmt, header, http_journeys_yaml, load_yaml, pct, run, table
from qos_agent.delivery.pipeline import Pipeline
from qos_agent.model import JourneyResult
from qos_agent.runloop.runner import Runner
from qos_agent.runloop.scheduler import Scheduler

SQLITE = "  - type: sqlite\n    path: results.db"
LOOP_PROBE_S = 0.010
TARGET_P99_MS = 5.0


async def loop_lag(samples: list[float]) -> None:
    """Overshoot of a short sleep, all along: how late the loop gets to anything."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(LOOP_PROBE_S)
        samples.append(max(0.0, (loop.time() - t - LOOP_PROBE_S) * 1000))


async def with_lag_probe(coro_seconds: float, body: asyncio.Future[None] | None = None) -> list[float]:
    samples: list[float] = []
    probe = asyncio.create_task(loop_lag(samples))
    await asyncio.sleep(coro_seconds)
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    return samples


async def agent_phase(url: str, tmp: Path, journeys: int, interval_s: float, seconds: float
                      ) -> tuple[list[float], list[float], int, int, int]:
    config = load_yaml(http_journeys_yaml(url, journeys, interval=f"{interval_s * 1000:.0f}ms", exporters=SQLITE,
                                          concurrency=50), tmp)
    runner = Runner(config)
    pipeline = Pipeline.from_config(config, runner.redact)
    seen: list[JourneyResult] = []

    def on_results(results: list[JourneyResult]) -> None:
        seen.extend(results)
        pipeline.submit(results)

    scheduler = Scheduler(config.journeys, runner.run, on_results, config.agent.concurrency, random.Random(7))
    await runner.probes.start(config.journeys)
    pipeline.start()
    scheduler.start()
    try:
        loop_samples = await with_lag_probe(seconds)
    finally:
        await scheduler.stop(10.0)
        await runner.close()
        await pipeline.close()
    failed = sum(1 for r in seen if not r.outcome.ok)
    lag = list(scheduler.stats.lag_ms)  # the scheduler keeps the last 1,024
    return lag, loop_samples, scheduler.stats.started, failed, scheduler.stats.skipped_overlaps


async def bare_phase(url: str, journeys: int, interval_s: float, seconds: float
                     ) -> tuple[list[float], list[float], int]:
    """The floor: timers at the same kind of planned times, each doing a bare fresh-session GET."""
    loop = asyncio.get_running_loop()
    rng = random.Random(7)
    lags: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    end = loop.time() + seconds

    async def get() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(use_dns_cache=False)) as s, \
                s.get(url) as resp:
            await resp.read()

    def fire(planned: float) -> None:
        lags.append(max(0.0, (loop.time() - planned) * 1000))
        task = loop.create_task(get())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        nxt = planned + interval_s - rng.uniform(0, min(0.05 * interval_s, 2.0))
        if nxt < end:
            loop.call_at(nxt, fire, nxt)

    for _ in range(journeys):
        first = loop.time() + rng.uniform(0, interval_s)
        loop.call_at(first, fire, first)
    loop_samples = await with_lag_probe(seconds)
    async with asyncio.timeout(15):
        while tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    return lags, loop_samples, len(lags)


def pair(xs: list[float], digits: int = 2) -> str:
    worst = max(xs) if xs else float("nan")
    return f"{fmt(pct(xs, 0.5), digits)} / {fmt(pct(xs, 0.99), digits)} / {fmt(worst, digits)}"


async def main(journeys: int, seconds: float, per_minute: float) -> None:
    interval_s = journeys * 60 / per_minute
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp, Demo() as demo:
        assert demo.proc is not None
        others = Others([demo.proc.pid])
        url = f"{demo.url}/fast"
        lag, loop_a, started, failed, skipped = await agent_phase(url, Path(tmp), journeys, interval_s, seconds)
        bare_lag, loop_b, fired = await bare_phase(url, journeys, interval_s, seconds)
        note = others.note()
    print(f"{journeys} journeys every {interval_s:g} s = {per_minute:,.0f} runs/min, for {seconds:g} s each "
          f"(the first interval fills up as the random offsets come due)\n")
    print(table(
        ["runner", "runs started", "schedule lag ms p50 / p99 / max", "event loop lag ms p50 / p99 / max"],
        [["qos-agent Scheduler + Runner + SQLite", f"{started:,} ({failed} failed, {skipped} skipped overlaps)",
          pair(lag), pair(loop_a)],
         ["bare asyncio call_at + aiohttp GET", f"{fired:,}", pair(bare_lag), pair(loop_b)]]))
    p99 = pct(lag, 0.99)
    print(f"\nqos-agent schedule lag p99 {p99:.2f} ms (target ≤ {TARGET_P99_MS:g} ms: "
          f"{'met' if p99 <= TARGET_P99_MS else 'NOT met'}); bare p99 {pct(bare_lag, 0.99):.2f} ms")
    print(note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--journeys", type=int, default=125, help="journeys configured (default 125)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase (default 30)")
    parser.add_argument("--rate", type=float, default=1000.0, help="journey runs per minute (default 1,000)")
    args = parser.parse_args()
    header("Scheduler lag (spine)", "bench.bench_scheduler", sys.argv[1:])
    run(main(args.journeys, args.seconds, args.rate))
