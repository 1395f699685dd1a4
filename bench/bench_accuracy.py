"""Accuracy: the latency each prober reports for a step minus the target's injected 200 ms.

Target: the demo service's `GET /delay?ms=200`, in its own process. Peers, in the same run, one
after the other at each load: qos-agent (the real path: `Runner.run_once` on a one-step HTTP
journey loaded from YAML; its step `duration_ms` and its `ttfb` phase), a bare aiohttp loop (a fresh
connector and session per request, `perf_counter_ns` around the request) and Prometheus'
blackbox_exporter (`probe_duration_seconds`). Loads: one at a time; open-loop arrivals at 100, 500
and 1,000 steps/s; closed-loop bursts of 50 and 200 started at once; and a floor: `/delay?ms=0` one at a
time. The peers take turns segment by segment (each load is split in two to four parts), so other
work on the machine hits them alike.
Run: `.venv/bin/python -m bench.bench_accuracy [--seconds S]` (S: length of each open-loop load, default 2).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import (
    Blackbox,
    Demo,
    Others,
    bursts,
    fmt,
    header,
    http_journeys_yaml,
    load_yaml,
    one_at_a_time,
    open_loop,
    pct,
    run,
    table,
)
from qos_agent.model import Journey, Outcome
from qos_agent.runloop.runner import Runner

DELAY_MS = 200
Probe = Callable[[], Awaitable[float]]


@dataclass
class Row:
    load: str
    agent: list[float] = field(default_factory=list)
    agent_ttfb: list[float] = field(default_factory=list)
    agent_lagged: list[bool] = field(default_factory=list)  # the step's `lagged` mark (issue 17)
    bare: list[float] = field(default_factory=list)
    blackbox: list[float] = field(default_factory=list)
    start_lag_ms: float = 0.0  # worst lateness of an arrival, over the peers (open loop only)


class Peers:
    """The three probers, each returning (measured − injected) in ms for one request."""

    def __init__(self, runner: Runner, journey: Journey, url: str, delay_ms: int, bbox: Blackbox | None,
                 bbox_session: aiohttp.ClientSession | None) -> None:
        self.runner, self.journey, self.url, self.delay_ms = runner, journey, url, delay_ms
        self.bbox, self.bbox_session = bbox, bbox_session
        self.ttfb: list[float] = []
        self.lagged: list[bool] = []

    async def agent(self) -> float:
        result = await self.runner.run_once(self.journey)
        step = result.steps[0]
        if step.outcome is not Outcome.PASSED:
            raise RuntimeError(f"qos-agent step failed: {step.error} {step.error_message}")
        self.ttfb.append(step.phases["ttfb_ms"] - self.delay_ms)
        self.lagged.append(step.lagged)
        return step.duration_ms - self.delay_ms

    async def bare(self) -> float:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(use_dns_cache=False)) as session:
            t0 = time.perf_counter_ns()
            async with session.get(self.url) as resp:
                await resp.read()
            elapsed = (time.perf_counter_ns() - t0) / 1e6
            if resp.status != 200:
                raise RuntimeError(f"bare aiohttp got {resp.status}")
        return elapsed - self.delay_ms

    async def blackbox(self) -> float:
        assert self.bbox is not None and self.bbox_session is not None
        return await self.bbox.probe(self.bbox_session, self.url) - self.delay_ms

    def probes(self) -> list[tuple[str, Probe]]:
        names: list[tuple[str, Probe]] = [("agent", self.agent), ("bare", self.bare)]
        if self.bbox is not None:
            names.append(("blackbox", self.blackbox))
        return names


async def measure(peers: Peers, floor: Peers, seconds: float) -> list[Row]:
    for _, fn in peers.probes():  # warm up: imports, CA store, first connections
        await one_at_a_time(fn, 5)
    rows: list[Row] = []

    async def fill(row: Row, run: Callable[[Probe], Awaitable[list[float]]], segments: int,
                   who: Peers = peers) -> None:
        """Peers take turns, segment by segment, so a burst of other work hits them alike."""
        for _ in range(segments):
            for name, fn in who.probes():
                who.ttfb, who.lagged = [], []
                getattr(row, name).extend(await run(fn))
                if name == "agent":
                    row.agent_ttfb.extend(who.ttfb)
                    row.agent_lagged.extend(who.lagged)
                await asyncio.sleep(0.25)
        rows.append(row)
        print(f"  done: {row.load}", file=sys.stderr, flush=True)

    await fill(Row("floor: /delay?ms=0, 1 at a time"), lambda fn: one_at_a_time(fn, 10), 3, floor)
    await fill(Row("1 at a time"), lambda fn: one_at_a_time(fn, 10), 3)
    for rate in (100, 500, 1000):
        row = Row(f"open loop {rate:,}/s")

        async def arrivals(fn: Probe, rate: int = rate, row: Row = row) -> list[float]:
            out, lag = await open_loop(fn, rate, seconds / 2)
            row.start_lag_ms = max(row.start_lag_ms, lag)
            return out

        await fill(row, arrivals, 2)
    await fill(Row("burst of 50"), lambda fn: bursts(fn, 50, 1, pause_s=0), 4)
    await fill(Row("burst of 200"), lambda fn: bursts(fn, 200, 1, pause_s=0), 3)
    return rows


def pair(xs: list[float]) -> str:
    return f"{fmt(pct(xs, 0.5))} / {fmt(pct(xs, 0.99))}"


def report(rows: list[Row], note: str) -> None:
    print(f"Error = measured − injected {DELAY_MS} ms, in ms (p50 / p99). The floor row is the latency of the "
          "same request\nwith no delay injected: a fresh connection's real cost, which every prober rightly "
          "measures.\n")
    out = []
    for r in rows:
        d50 = pct(r.agent, 0.5) - pct(r.bare, 0.5)
        bb99 = pct(r.blackbox, 0.99)
        out.append([
            r.load, str(len(r.agent)), pair(r.agent), pair(r.agent_ttfb), pair(r.bare), pair(r.blackbox),
            f"{d50:+.2f}", "-" if math.isnan(bb99) else f"{pct(r.agent, 0.99) / bb99:.2f}×",
            fmt(r.start_lag_ms) if r.load.startswith("open") else "",
            f"{sum(r.agent_lagged) / max(1, len(r.agent_lagged)):.0%}",
            pair([e for e, lagged in zip(r.agent, r.agent_lagged, strict=False) if not lagged]),
        ])
    print(table(["load", "n", "qos-agent step", "qos-agent ttfb", "bare aiohttp", "blackbox_exporter",
                 "p50 agent − bare", "p99 agent / bbox", "worst arrival lag ms", "agent lagged",
                 "agent step, unlagged"], out))
    print("\nTargets: p50 within 0.5 ms of bare aiohttp and p99 no worse than blackbox_exporter at each "
          "open-loop load;\nissue 3: p50 ≤ 1 ms at 1, 50 and 200 concurrent journeys, p99 ≤ 3 ms at 200.")
    print(note)


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp, Demo() as demo:
        assert demo.proc is not None
        others = Others([demo.proc.pid])
        url, zero = f"{demo.url}/delay?ms={DELAY_MS}", f"{demo.url}/delay?ms=0"
        config = load_yaml(http_journeys_yaml(url, 1), Path(tmp))
        zero_config = load_yaml(http_journeys_yaml(zero, 1), Path(tmp))
        runner = Runner(config)
        await runner.probes.start(config.journeys)
        bbox = Blackbox() if Blackbox.available() else None
        try:
            if bbox is not None:
                bbox.__enter__()
                assert bbox.proc is not None
                others.add(bbox.proc.pid)
                print(f"blackbox_exporter {bbox.version()}", flush=True)
            else:
                print("blackbox_exporter not installed: its column is empty", flush=True)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as bbox_session:
                rows = await measure(Peers(runner, config.journeys[0], url, DELAY_MS, bbox, bbox_session),
                                     Peers(runner, zero_config.journeys[0], zero, 0, bbox, bbox_session), seconds)
            note = others.note()
        finally:
            await runner.close()
            if bbox is not None:
                bbox.stop()
    report(rows, note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each open-loop load")
    args = parser.parse_args()
    header("Accuracy (spine)", "bench.bench_accuracy", sys.argv[1:])
    run(main(args.seconds))
