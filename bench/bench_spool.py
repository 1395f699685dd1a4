"""Spool overhead per result: how long a network sink's write (encode + durable commit) takes.

A result is one journey point plus three step points (the shape of a 3-step journey run). Three
figures: one result at a time (every write its own transaction: the worst case), 50 results written
at once (group commit, as when many runs finish together), and the event-loop CPU per result.
Run: `.venv/bin/python -m bench.bench_spool [RESULTS]`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from qos_agent.delivery.points import result_points
from qos_agent.model import JourneyKind, JourneyResult, Outcome, StepResult
from tests.support.influx import make_exporter


def result(i: int) -> JourneyResult:
    steps = [StepResult(step=f"s{k}", probe="http", outcome=Outcome.PASSED, duration_ms=12.3 + k,
                        status_code=200, bytes=1234, url=f"http://127.0.0.1:8080/api/s{k}",
                        phases={"dns_ms": 0.1, "connect_ms": 0.3, "ttfb_ms": 4.5, "transfer_ms": 0.2},
                        start_ms=1_700_000_000_000 + i * 10 + k) for k in range(3)]
    return JourneyResult(journey="checkout", kind=JourneyKind.JOURNEY, region="eu-west", agent="a1",
                         run_id=f"{i:016x}", start_ms=1_700_000_000_000 + i * 10, outcome=Outcome.PASSED,
                         duration_ms=40.0, steps=steps, tags=(("stage", "purchase"),))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # Nothing listens: all spooled. The InfluxDB sink as the core wraps it (store + delivery loop).
        exp = make_exporter(Path(tmp), {"url": "http://127.0.0.1:9", "database": "bench", "flush_interval": "1s"},
                            backoff=60)
        batches = [result_points(result(i)) for i in range(n)]
        per_point = len(batches[0])
        for b in batches[:50]:  # warm up (file creation, caches)
            await exp.write(b)

        print(f"spool overhead per result ({per_point} points each, {n} results a round, SQLite WAL, "
              "synchronous=NORMAL)")
        print("  results per write()   p50 µs/write   p99 µs/write   µs/result   µs/point   CPU µs/result")
        for group in (1, 10, 50, 200):
            lat = []
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i in range(0, n, group):
                pts = [p for b in batches[i:i + group] for p in b]
                s = time.perf_counter()
                await exp.write(pts)
                lat.append((time.perf_counter() - s) * 1e6)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            print(f"  {group:>17}   {statistics.median(lat):12.1f}   {pct(lat, 0.99):12.1f}   "
                  f"{wall / n * 1e6:9.1f}   {wall / n / per_point * 1e6:8.1f}   {cpu / n * 1e6:13.1f}")

        t0 = time.perf_counter()
        for i in range(0, n, 50):
            await asyncio.gather(*(exp.write(b) for b in batches[i:i + 50]))
        wall = time.perf_counter() - t0
        print(f"  50 concurrent write() calls of 1 result (group commit): {wall / n * 1e6:.1f} µs/result, "
              f"{wall / n / per_point * 1e6:.1f} µs/point")

        loop = asyncio.get_running_loop()
        hops = []
        for _ in range(2000):
            s = time.perf_counter()
            await loop.run_in_executor(None, int)
            hops.append((time.perf_counter() - s) * 1e6)
        print(f"  (a bare thread hop on this machine, run_in_executor(int): p50 {statistics.median(hops):.1f} µs)")
        print(f"  spooled points: {exp.stats.depth}")
        exp.durable.with_options(close_timeout_s=0.1)
        await exp.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
