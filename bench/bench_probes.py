"""Cost per step of the tcp, tls and dns step kinds, beside blackbox_exporter's tcp_connect, tls and dns.

Targets, each in its own process pinned away from the client core: the demo service (its HTTP port is
the tcp target; its HTTPS port, a self-signed certificate, the tls target) and dnsmasq on a loopback
port answering `shop.test`. qos-agent: `Runner.run` of a one-step journey loaded from YAML (the whole
agent path: templating, the probe, results, the certificate facts), closed loop with `--workers` in
flight; figures are steps/s, the client's CPU per step and the step's own duration (p50). Peer:
blackbox_exporter with modules `tcp_connect` (prober tcp), `tls_connect` (prober tcp, tls: true,
insecure_skip_verify) and `dns_a` (prober dns, udp, A), driven through /probe with the same number in
flight; its CPU per probe is the exporter process's CPU (which includes serving /probe over HTTP),
and its duration is `probe_duration_seconds`. The rounds alternate; medians are reported.
Run: `.venv/bin/python -m bench.bench_probes [--seconds S] [--rounds N] [--workers W]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import (
    Blackbox,
    Demo,
    Others,
    client_cpus,
    header,
    load_yaml,
    pct,
    pin,
    proc_cpu_s,
    table,
    target_cpus,
)
from qos_agent.runloop.runner import Runner
from tests.support.dnsmasq import ZONE, dnsmasq_binary, free_port

BLACKBOX_MODULES = """\
modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}
  tls_connect:
    prober: tcp
    timeout: 5s
    tcp: {preferred_ip_protocol: ip4, ip_protocol_fallback: false, tls: true, tls_config: {insecure_skip_verify: true}}
  dns_a:
    prober: dns
    timeout: 5s
    dns: {query_name: shop.test, query_type: A, transport_protocol: udp, preferred_ip_protocol: ip4,
          ip_protocol_fallback: false}
"""


@dataclass
class Round:
    steps: int
    wall_s: float
    cpu_s: float  # the prober's CPU: the client process (qos-agent) or the exporter process (blackbox)
    durations_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.steps / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / max(1, self.steps) * 1e6


async def closed_loop(one: Callable[[], Awaitable[float]], workers: int, seconds: float,
                      cpu: Callable[[], float]) -> Round:
    durations: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            durations.append(await one())

    cpu0, t0 = cpu(), time.perf_counter()
    async with asyncio.timeout(seconds + 30):
        await asyncio.gather(*(worker() for _ in range(workers)))
    return Round(len(durations), time.perf_counter() - t0, cpu() - cpu0, durations)


def journeys(kind: str, step: str) -> str:
    return (f"version: 1\nagent: {{region: bench, name: bench, concurrency: 1000, listen: off, state_dir: state}}\n"
            f"journeys:\n  - name: {kind}\n    steps:\n      - name: s\n        {step}\n")


def agent_one(runner: Runner, journey: object) -> Callable[[], Awaitable[float]]:
    async def one() -> float:
        [result] = await runner.run(journey)  # type: ignore[arg-type]
        if not result.outcome.ok:
            raise RuntimeError(f"qos-agent step failed: {result.error_message}")
        return result.steps[0].duration_ms
    return one


def blackbox_one(bb: Blackbox, session: aiohttp.ClientSession, target: str, module: str
                 ) -> Callable[[], Awaitable[float]]:
    async def one() -> float:
        return await bb.probe(session, target, module)
    return one


def https_port(demo_url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(demo_url + "/api/tls", timeout=5) as r:
        return int(json.loads(r.read())["port"])


async def main(seconds: float, rounds: int, workers: int) -> None:
    pin(0, client_cpus())
    dns_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-probes-") as tmp, Demo(target_cpus()) as demo, \
            Blackbox(target_cpus(), config=BLACKBOX_MODULES) as bb:
        dns_proc = subprocess.Popen([dnsmasq_binary(), f"--port={dns_port}", "--listen-address=127.0.0.1",
                                     "--bind-interfaces", "--no-resolv", "--no-hosts", "--keep-in-foreground",
                                     f"--pid-file={tmp}/dnsmasq.pid", "--user=root", *ZONE],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pin(dns_proc.pid, target_cpus())
            time.sleep(0.5)
            assert demo.proc is not None and bb.proc is not None
            others = Others([demo.proc.pid, bb.proc.pid, dns_proc.pid])
            http_port, tls_port = int(demo.url.rsplit(":", 1)[1]), https_port(demo.url)
            steps = {
                "tcp": (f"tcp: {{host: 127.0.0.1, port: {http_port}}}", f"127.0.0.1:{http_port}", "tcp_connect"),
                "tls": (f"tls: {{host: 127.0.0.1, port: {tls_port}, verify: false}}", f"127.0.0.1:{tls_port}",
                        "tls_connect"),
                "dns": (f"dns: {{name: shop.test, server: '127.0.0.1:{dns_port}'}}", f"127.0.0.1:{dns_port}", "dns_a"),
            }
            results: dict[tuple[str, str], list[Round]] = {}
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                for kind, (step, target, module) in steps.items():
                    config = load_yaml(journeys(kind, step), Path(tmp))
                    runner = Runner(config)
                    ours = agent_one(runner, config.journeys[0])
                    theirs = blackbox_one(bb, session, target, module)
                    bb_pid = bb.proc.pid
                    try:
                        await closed_loop(ours, workers, 0.5, time.process_time)  # warm up
                        await closed_loop(theirs, workers, 0.5, lambda pid=bb_pid: proc_cpu_s(pid))
                        for _ in range(rounds):
                            results.setdefault((kind, "qos-agent"), []).append(
                                await closed_loop(ours, workers, seconds, time.process_time))
                            results.setdefault((kind, f"blackbox {module}"), []).append(
                                await closed_loop(theirs, workers, seconds, lambda pid=bb_pid: proc_cpu_s(pid)))
                    finally:
                        await runner.close()
            note = others.note()
        finally:
            dns_proc.terminate()
            dns_proc.wait(5)
    report(results, workers, seconds, note)


def report(results: dict[tuple[str, str], list[Round]], workers: int, seconds: float, note: str) -> None:
    rows = []
    med: dict[tuple[str, str], tuple[float, float]] = {}
    for (kind, prober), rs in results.items():
        rate = statistics.median(r.rate for r in rs)
        cpu = statistics.median(r.cpu_us for r in rs)
        durations = [d for r in rs for d in r.durations_ms]
        med[(kind, prober)] = (rate, cpu)
        rows.append([kind, prober, f"{rate:,.0f}", f"{cpu:,.0f}", f"{pct(durations, 0.50):.2f}",
                     f"{pct(durations, 0.99):.2f}"])
    print(f"{workers} in flight, rounds of {seconds:g} s alternating, medians over rounds; prober CPU: the client "
          "process for qos-agent, the exporter process for blackbox_exporter\n")
    print(table(["kind", "prober", "steps/s", "prober CPU µs/step", "step p50 ms", "step p99 ms"], rows))
    print()
    for kind in ("tcp", "tls", "dns"):
        ours = med.get((kind, "qos-agent"))
        theirs = next((v for (k, p), v in med.items() if k == kind and p.startswith("blackbox")), None)
        if ours and theirs:
            print(f"{kind}: qos-agent CPU per step = {ours[1] / theirs[1]:.1f}x blackbox_exporter's")
    print(note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per prober and kind")
    parser.add_argument("--workers", type=int, default=16, help="steps in flight")
    args = parser.parse_args()
    header("Network step kinds: cost per step", "bench.bench_probes", sys.argv[1:])
    if not Blackbox.available():
        sys.exit("blackbox_exporter is missing: run scripts/install-system-deps.sh")
    asyncio.run(main(args.seconds, args.rounds, args.workers))
