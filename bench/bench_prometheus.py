"""What the Prometheus side costs: keeping the journey series, and remote write to a real Prometheus.

1. Metrics: µs per result to keep the journey series (JourneyMetrics.observe: results -> points ->
   JourneySeries; every run has a trace id, kept as its buckets' exemplar), and the cost of one
   /metrics render at that cardinality, in the text format and as OpenMetrics (with exemplars). Peer:
   the older prometheus_client Counter/Histogram set it replaced (runs, attempts, duration, step errors).
2. Remote write: the sink's encode (points -> WriteRequest records, µs per point and samples/s),
   then send() of those records in batches to a real Prometheus (--web.enable-remote-write-receiver):
   samples/s, and CPU µs per sample of this process and of Prometheus.
Run: `.venv/bin/python -m bench.bench_prometheus [RESULTS]` (default 20,000; remote write uses the
first 2,000).
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from exporters.prometheus.config import RemoteWriteSpec
from exporters.prometheus.proto import decode
from exporters.prometheus.remote_write import PrometheusRemoteWriteSink
from qos_agent.delivery.points import points_of
from qos_agent.model import JourneyKind, JourneyResult, Outcome, StepResult
from qos_agent.ops.journey_metrics import JourneyMetrics
from qos_agent.plugins.sinks import ExporterEnv
from tests.support.prometheus import PrometheusServer

from .common import Others, header, proc_cpu_s, table

JOURNEYS, REGIONS = 20, 3
PASSES = 3
RW_RESULTS = 2000  # ~280 samples each: half a million samples through remote write
T0 = int(time.time() * 1000) - 600_000  # ten minutes ago: well inside Prometheus' head block


def result(i: int) -> JourneyResult:
    """A realistic result: 3 HTTP steps with phases, 1 in 10 failing; 20 journeys x 3 regions."""
    fail = i % 10 == 0
    steps = [StepResult(step=f"s{k}", probe="http", outcome=Outcome.FAILED if fail and k == 2 else Outcome.PASSED,
                        duration_ms=12.3 + k, status_code=200, bytes=1234, url=f"http://127.0.0.1:8080/api/s{k}",
                        phases={"dns_ms": 0.1, "connect_ms": 0.3, "ttfb_ms": 4.5, "transfer_ms": 0.2},
                        start_ms=T0 + i * 10 + k, error=None) for k in range(3)]
    journey = f"j{i % JOURNEYS}"
    return JourneyResult(journey=journey, kind=JourneyKind.JOURNEY, region=f"r{(i // JOURNEYS) % REGIONS}",
                         agent="a1", run_id=f"{i:016x}", start_ms=T0 + i * 10,
                         outcome=Outcome.FAILED if fail else Outcome.PASSED, duration_ms=40.0, steps=steps,
                         tags=(("stage", "purchase"),), trace_id=f"{i:032x}")


def bench_metrics(results: list[JourneyResult]) -> list[list[str]]:
    rows = []
    passes = []
    for _ in range(PASSES):  # the median of a few passes, each into fresh series: shared machines are noisy
        jm = JourneyMetrics()
        t = time.perf_counter()
        for r in results:
            jm.observe([r])
        passes.append((time.perf_counter() - t) / len(results) * 1e6)
    per = statistics.median(passes)
    t = time.perf_counter()
    text = jm.render()
    render_ms = (time.perf_counter() - t) * 1000
    lines = sum(1 for x in text.splitlines() if not x.startswith(b"#"))
    rows.append(["journey series (JourneyMetrics.observe / render)", f"{per:.1f}",
                 f"{render_ms:.1f} ms for {lines} samples"])
    t = time.perf_counter()
    page = jm.render(openmetrics=True)
    om_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    jm.render()
    again_ms = (time.perf_counter() - t) * 1000
    rows.append(["the same page again (label strings cached, as from the 2nd scrape on)", "-",
                 f"{again_ms:.1f} ms for {lines} samples"])
    rows.append(["the same page as OpenMetrics (render(openmetrics=True), label strings cached)", "-",
                 f"{om_ms:.1f} ms, {page.count(b' # {trace_id=')} exemplars"])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(jm)
    t = time.perf_counter()
    generate_latest(registry)
    rows.append(["the same through prometheus_client's exposition", "-",
                 f"{(time.perf_counter() - t) * 1000:.1f} ms for {lines} samples"])

    old = CollectorRegistry()
    runs = Counter("qos_journey_runs", "", ["journey", "region", "kind", "outcome"], registry=old)
    attempts = Counter("qos_journey_attempts", "", ["journey", "region", "outcome"], registry=old)
    latency = Histogram("qos_journey_duration_seconds", "", ["journey", "region"], registry=old)
    errors = Counter("qos_step_errors", "", ["journey", "step", "region", "error"], registry=old)
    t = time.perf_counter()
    for r in results:
        attempts.labels(r.journey, r.region, str(r.outcome)).inc()
        for s in r.steps:
            if s.error is not None:
                errors.labels(r.journey, s.step, r.region, str(s.error)).inc()
        runs.labels(r.journey, r.region, str(r.kind), str(r.outcome)).inc()
        latency.labels(r.journey, r.region).observe(r.duration_ms / 1000)
    per_old = (time.perf_counter() - t) / len(results) * 1e6
    t = time.perf_counter()
    text = generate_latest(old)
    render_old = (time.perf_counter() - t) * 1000
    lines = sum(1 for x in text.splitlines() if not x.startswith(b"#"))
    rows.append(["peer: the 4 prometheus_client series it replaced", f"{per_old:.1f}",
                 f"{render_old:.1f} ms for {lines} samples"])
    return rows


async def bench_remote_write(results: list[JourneyResult], tmp: Path) -> list[list[str]]:
    prom = PrometheusServer(tmp / "prom")
    prom.root.mkdir()
    prom.start()
    assert prom.proc is not None
    try:
        sink = PrometheusRemoteWriteSink(RemoteWriteSpec(url=prom.url + "/api/v1/write", name="bench"),
                                         ExporterEnv(tmp, "r0", "a1"))
        points = points_of(results)
        cpu = time.process_time()
        t = time.perf_counter()
        records = sink.encode(points)
        enc_wall, enc_cpu = time.perf_counter() - t, time.process_time() - cpu
        samples = sum(len(s) for r in records for _, s in decode(base64.b64decode(r)))
        cpu, pcpu = time.process_time(), proc_cpu_s(prom.proc.pid)
        t = time.perf_counter()
        for i in range(0, len(records), 100):  # the sink's default batch_size
            await sink.send(records[i:i + 100])
        wall = time.perf_counter() - t
        cpu, pcpu = time.process_time() - cpu, proc_cpu_s(prom.proc.pid) - pcpu
        await sink.close()
        stored = prom.query('count(last_over_time({__name__=~"qos_.+"}[1h]))')
        return [
            ["encode (points -> records)", f"{len(points):,} points, {samples:,} samples",
             f"{samples / enc_wall:,.0f} samples/s", f"{enc_cpu / samples * 1e6:.2f} µs/sample "
             f"({enc_cpu / len(results) * 1e6:.0f} µs/result)", "-"],
            ["send (snappy + HTTP) to Prometheus 2.42", f"{len(records):,} records in batches of 100",
             f"{samples / wall:,.0f} samples/s", f"{cpu / samples * 1e6:.2f} µs/sample",
             f"{pcpu / samples * 1e6:.2f} µs/sample; {stored[0]['value'][1]} series stored"],
        ]
    finally:
        prom.stop()


def main(n: int) -> None:
    header("Prometheus: journey series and remote write", "bench.bench_prometheus", [str(n)])
    others = Others()
    results = [result(i) for i in range(n)]
    print(table(["what", "µs per result", "one /metrics render"], bench_metrics(results)), "\n", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(bench_remote_write(results[:RW_RESULTS], Path(tmp)))
    print(table(["remote write", "volume", "throughput", "agent CPU", "Prometheus CPU"], rows))
    print("\n" + others.note())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
