"""Export throughput to a real influxd (v1), with CPU % of one core for the agent and for influxd.

1. Replay: N points already in the spool (as after an outage) are delivered by a fresh exporter.
2. Sustained: results are written (encode + spool) as fast as one event loop can while the same
   exporter delivers them; figures are for the whole path, write() to InfluxDB.
Run: `.venv/bin/python -m bench.bench_export [POINTS]` (default 200,000).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from exporters.influxdb.lineprotocol import encode_many
from qos_agent.delivery.points import result_points
from qos_agent.delivery.store import Store, spool_path
from tests.support.influx import InfluxServer, exporter_spec, make_exporter

from .bench_spool import result

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


class Meter:
    def __init__(self, influxd_pid: int) -> None:
        self.pid = influxd_pid
        self.t0, self.cpu0, self.icpu0 = time.perf_counter(), time.process_time(), proc_cpu_s(influxd_pid)

    def report(self, label: str, points: int) -> None:
        wall = time.perf_counter() - self.t0
        cpu, icpu = time.process_time() - self.cpu0, proc_cpu_s(self.pid) - self.icpu0
        print(f"  {label:<34} {points:>8} points in {wall:6.2f} s = {points / wall:9,.0f} points/s   "
              f"agent CPU {cpu / wall * 100:5.1f}% of a core ({cpu / points * 1e6:.1f} µs/point)   "
              f"influxd CPU {icpu / wall * 100:5.1f}%")


async def wait_drained(exp: Any, limit_s: float = 300.0) -> None:
    deadline = time.monotonic() + limit_s
    while exp.stats.depth and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "influxd"
        root.mkdir()
        server = InfluxServer(root)
        server.start()
        assert server.proc is not None
        try:
            await run(server, Path(tmp), n, server.proc.pid)
        finally:
            server.stop()


async def run(server: InfluxServer, tmp: Path, n: int, pid: int) -> None:
    results = [result_points(result(i)) for i in range(n // 4)]
    per = len(results[0])
    print(f"export to real influxd 1.6 (v1, gzip, batch_size 5000), results of {per} points, "
          f"{os.cpu_count()} CPUs")

    cfg = {"url": server.url, "database": "bench", "flush_interval": "200ms"}
    store = Store(spool_path(tmp / "state", exporter_spec(cfg).name))  # fill it as an outage would have
    for i in range(0, len(results), 250):
        await store.put(encode_many([p for r in results[i:i + 250] for p in r]))
    total = store.depth
    await store.close()

    meter = Meter(pid)
    exp = make_exporter(tmp / "state", cfg, backoff=0.5)  # wrapped by the core, as the pipeline does
    await wait_drained(exp)
    meter.report("replay of spooled points", total)
    assert exp.stats.depth == 0 and exp.stats.exported == total, exp.stats

    # Sustained: shift timestamps so these are new points, not overwrites.
    shifted = [result_points(result(i + n)) for i in range(n // 4)]
    meter = Meter(pid)
    for i in range(0, len(shifted), 250):
        await exp.write([p for r in shifted[i:i + 250] for p in r])
    await wait_drained(exp)
    meter.report("sustained write() -> influxd", total)
    await exp.close()
    count = server.count("journey", "bench") + server.count("step", "bench")
    print(f"  in influxd: {count} points (expected {2 * total}); export_errors {exp.stats.export_errors}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
