"""How long the CX scorecard takes to read a 30-day period of 50 journeys × 3 regions from each source.

The data: 50 journeys in 3 regions (one agent each), one run every `--interval` (default 5m) for the
period and the one before it (the trend reads both), ~1 % failed runs, 0.5 % lagged, some degraded,
a 20-60 minute disruption per journey and period (hidden from uptime), owner / customer_reason /
weight tags. It is written, once, to:
- three SQLite stores (one per agent) by the real SqliteExporter, journey and step points (a step
  per run, so journey rows sit among others as in a real store);
- a real InfluxDB 1.x (Debian's influxd), journey and disruption points by line protocol (the
  scorecard reads no step point, and InfluxDB keeps measurements apart);
- a real Prometheus (Debian's 2.42) through the real remote-write sink, one per agent, with
  `instance`/`job` labels as a scrape would add and each agent's `qos_agent_runs_started_total`:
  samples at run times, which is what the counters' values are (the reads look each series up at
  the window's two edges, so their cost follows the number of series, not of samples).
Then `qos-agent report --since 30d --format json` is read from each source `--repeat` times (the
scorecard of the period and of the one before), and the median and worst times printed, with the
HTML page (its timeline too) once. Target: under 5 s each (issue 26).

Run: `.venv/bin/python -m bench.bench_scorecard [--interval 5m] [--days 30] [--repeat 3] [--data DIR]`;
`--data` keeps the generated stores and servers' files for the next run (generating takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from exporters.files.config import SqliteSpec
from exporters.files.sqlite import SqliteExporter
from exporters.influxdb.lineprotocol import encode_many
from exporters.prometheus.config import RemoteWriteSpec
from exporters.prometheus.proto import label_bytes, timeseries_entry
from exporters.prometheus.remote_write import PrometheusRemoteWriteSink
from qos_agent.language.nodes import parse_duration
from qos_agent.model import Point
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.reports.command import Options, run
from tests.support.influx import InfluxServer, _http, _wait_ready
from tests.support.prometheus import PROMETHEUS, PrometheusServer

from .common import Others, header, load_average, table

JOURNEYS, REGIONS = 50, ("eu-west", "us-east", "ap-south")
REASONS = ("pay for an order", "sign up", "see what I owe", "get help", "find a product", "track a delivery",
           "change my plan", "sign in")
DAY = 86_400_000


class LongPrometheus(PrometheusServer):
    """The test Prometheus, keeping 100 days (the test one keeps 1)."""

    def start(self) -> None:
        assert PROMETHEUS is not None
        argv = [PROMETHEUS, f"--config.file={self._config()}", f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
                "--storage.tsdb.retention.time=100d", "--log.level=warn"]
        self.proc = self._spawn(argv)
        _wait_ready(self.url + "/-/ready", 200, self.proc, self.root / "server.log", limit_s=300)


def journeys_yaml(influx_url: str) -> str:
    lines = ["version: 1", "agent: {interval: 5m}", "exporters:", f"  - {{type: influxdb, url: '{influx_url}', "
             "database: qos}", "journeys:"]
    for j in range(JOURNEYS):
        lines += [f"  - name: j{j:02d}", f"    owner: team-{j % 8}", f"    customer_reason: {REASONS[j % 8]}",
                  f"    weight: {0.5 + j % 4 / 4}", "    slo: {success: 99%, latency: 2s}",
                  '    steps: [{name: s, http: {url: "https://shop.example/"}}]']
    return "\n".join(lines) + "\n"


def day_points(day_ms: int, interval_ms: int, rng: random.Random, end_ms: int) -> dict[str, list[Point]]:
    """One day of each agent's points (journey, step, disruption) before `end_ms`, in time order."""
    out: dict[str, list[Point]] = {r: [] for r in REGIONS}
    for ri, region in enumerate(REGIONS):
        agent = f"agent-{region}"
        for j in range(JOURNEYS):
            tags = (("agent", agent), ("customer_reason", REASONS[j % 8]), ("journey", f"j{j:02d}"),
                    ("kind", "journey"), ("owner", f"team-{j % 8}"), ("region", region),
                    ("weight", f"{0.5 + j % 4 / 4:g}"))
            step_tags = (("agent", agent), ("customer_reason", REASONS[j % 8]), ("journey", f"j{j:02d}"),
                         ("owner", f"team-{j % 8}"), ("probe", "http"), ("region", region), ("step", "s"),
                         ("weight", f"{0.5 + j % 4 / 4:g}"))
            broken = (day_ms // DAY + j) % 15 == ri  # one day in 15 a journey breaks in one region for a while
            fault_from = day_ms + (j * 37 % 20) * 3_600_000
            fault_to = fault_from + (20 + j % 41) * 60_000
            offset = (j * 7919 + ri * 104_729) % interval_ms
            opened = None
            for t in range(day_ms + offset, min(end_ms, day_ms + DAY), interval_ms):
                faulty = broken and fault_from <= t < fault_to
                ok = not faulty and rng.random() > 0.01
                slow = ok and rng.random() < 0.02
                lagged = rng.random() < 0.005
                duration = rng.uniform(2100, 2600) if slow else rng.uniform(150, 600) * (1 + ri * 0.3)
                outcome = "degraded" if slow else "passed" if ok else "failed"
                fields = (("duration_ms", duration), ("success", ok), ("outcome", outcome),
                          ("failed_step", "" if ok else "s"), ("error", "" if ok else "status"),
                          ("error_message", "" if ok else "HTTP 503"), ("steps", 1), ("attempt", 1),
                          ("flaky", False), ("final", True), ("run_id", f"{region}-{j}-{t}"),
                          ("loop_lag_ms", 80.0 if lagged else 0.5), ("lagged", lagged))
                out[region].append(Point("journey", tags, fields, t))
                out[region].append(Point("step", step_tags, (("duration_ms", duration), ("success", ok),
                                                             ("outcome", outcome), ("run_id", f"{region}-{j}-{t}"),
                                                             ("lagged", lagged)), t))
                if faulty and opened is None:
                    opened = t
                    out[region].append(_disruption(tags, "open", t, t, ()))
                elif not faulty and opened is not None:
                    minutes = (t - opened) / 60_000
                    out[region].append(_disruption(tags, "close", t, opened, (
                        ("duration_s", (t - opened) / 1000), ("hidden_minutes", minutes))))
                    opened = None
        out[region].sort(key=lambda p: p.time_ms)
    return out


def _disruption(tags: tuple[tuple[str, str], ...], state: str, t: int, opened: int,
                extra: tuple[tuple[str, float], ...]) -> Point:
    own = tuple(sorted((*(kv for kv in tags if kv[0] != "kind"), ("state", state))))
    return Point("disruption", own, (("reason", "2 consecutive failed runs"), ("success_ratio", 0.5),
                                     ("latency_p95_ms", 300.0), ("opened_ms", opened), ("uptime_ok", True), *extra), t)


async def generate(data: Path, days: int, interval_ms: int, influx: InfluxServer, prom: PrometheusServer,
                   end: int) -> int:
    """Write 2 × days of data up to `end` to the three stores, InfluxDB and Prometheus; the number of runs."""
    rng = random.Random(26)
    start = end - 2 * days * DAY
    stores = {r: SqliteExporter(SqliteSpec(data / f"{r}.db", retention_s=1e10)) for r in REGIONS}
    sinks = {r: PrometheusRemoteWriteSink(
        RemoteWriteSpec(url=prom.url + "/api/v1/write", name=r,
                        external_labels=(("instance", f"agent-{r}:9469"), ("job", "qos-agent"))),
        ExporterEnv(data, r, f"agent-{r}")) for r in REGIONS}
    influx.query("CREATE DATABASE qos")
    runs = 0
    counters = AgentCounters(end)
    try:
        for day in range(start, end, DAY):
            by_agent = day_points(day, interval_ms, rng, end)
            records: list[tuple[int, str]] = []
            for region, points in by_agent.items():
                await stores[region].write(points)
                records += [(p.time_ms, rec) for p in points if p.measurement != "step"
                            for rec in sinks[region].encode([p])]
                lines = encode_many([p for p in points if p.measurement != "step"])
                for i in range(0, len(lines), 50_000):
                    status, body = _http("POST", f"{influx.url}/write?db=qos&precision=ms",
                                         "\n".join(lines[i:i + 50_000]).encode(), timeout=120)
                    assert status == 204, body[:300]
                runs += sum(1 for p in points if p.measurement == "journey")
            records += counters.day(day, by_agent)
            records.sort(key=lambda r: r[0])
            for i in range(0, len(records), 2000):
                await sinks[REGIONS[0]].send([r for _, r in records[i:i + 2000]])
            print(f"  {time.strftime('%H:%M:%S')} wrote {(day - start) // DAY + 1} of {2 * days} days "
                  f"({runs:,} runs); load {load_average()}", flush=True)
    finally:
        for store in stores.values():
            await store.close()
        for sink in sinks.values():
            await sink.close()
    return runs


class AgentCounters:
    """Each agent's qos_agent_runs_started_total once a minute (what its scrape would show)."""

    def __init__(self, end_ms: int) -> None:
        self.total: dict[str, int] = {}
        self.end_ms = end_ms

    def day(self, day_ms: int, by_agent: dict[str, list[Point]]) -> list[tuple[int, str]]:
        out = []
        for region, points in by_agent.items():
            labels = label_bytes(sorted((("__name__", "qos_agent_runs_started_total"), ("agent", f"agent-{region}"),
                                         ("instance", f"agent-{region}:9469"), ("job", "qos-agent"))))
            times = sorted(p.time_ms for p in points if p.measurement == "journey")
            base, k = self.total.get(region, 0), 0
            for t in range(day_ms, min(day_ms + DAY, self.end_ms), 60_000):
                while k < len(times) and times[k] <= t:
                    k += 1
                out.append((t, base64.b64encode(timeseries_entry(labels, float(base + k), t)).decode()))
            self.total[region] = base + len(times)
        return out


def time_reads(options: Options, repeat: int, now_ms: int) -> list[float]:
    out = []
    for _ in range(repeat):
        sink = Console(file=io.StringIO(), width=200)
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the JSON itself is not the point here
            code = run(options, sink, sink, now_ms=now_ms)
        out.append(time.perf_counter() - t)
        assert code == 0, code
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--interval", default="5m")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    interval_ms = int((parse_duration(args.interval) or 300.0) * 1000)
    header("CX scorecard: reading a 30-day period of 50 journeys × 3 regions", "bench.bench_scorecard",
           [f"--interval {args.interval}", f"--days {args.days}", f"--repeat {args.repeat}"])
    temp = None if args.data else tempfile.mkdtemp(prefix="qos-bench-scorecard-")
    data = args.data or Path(temp or ".")
    marker = data / f"generated-{args.interval}-{args.days}d.json"
    fresh = not marker.exists()
    if fresh and data.exists():
        shutil.rmtree(data)
    for sub in ("influxd", "prom"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    influx, prom = InfluxServer(data / "influxd"), LongPrometheus(data / "prom")
    influx.start()
    prom.start()
    others = Others([p.pid for p in (influx.proc, prom.proc) if p is not None])
    try:
        if fresh:
            t, end = time.perf_counter(), int(time.time() * 1000)
            runs = asyncio.run(generate(data, args.days, interval_ms, influx, prom, end))
            marker.write_text(json.dumps({"runs": runs, "seconds": time.perf_counter() - t, "end_ms": end}))
        made = json.loads(marker.read_text())
        runs, now = made["runs"], made["end_ms"]  # the report runs as of the data's end: agents write up to now
        journeys = data / "journeys.yaml"
        journeys.write_text(journeys_yaml(influx.url))
        since = f"{args.days}d"
        sources = {"sqlite (3 stores)": Options(file=journeys, dbs=[data / f"{r}.db" for r in REGIONS], since=since,
                                                format="json"),
                   "influxdb 1.6": Options(file=journeys, source="influxdb", since=since, format="json"),
                   "prometheus 2.42": Options(file=journeys, source="prometheus", url=prom.url, since=since,
                                              format="json")}
        rows = []
        for name, options in sources.items():
            times = time_reads(options, args.repeat, now)
            page = data / f"{name.split()[0]}.html"
            t = time.perf_counter()
            run(dataclasses.replace(options, format=None, html=page), Console(file=io.StringIO()),
                Console(file=io.StringIO()), now_ms=now)
            html_s = time.perf_counter() - t
            rows.append([name, f"{statistics.median(times):.2f}", f"{max(times):.2f}", f"{html_s:.2f}",
                         f"{page.stat().st_size / 1e6:.1f} MB"])
            print(f"  {name}: {', '.join(f'{x:.2f}' for x in times)} s; load {load_average()}", flush=True)
        print(f"\ndata: {JOURNEYS} journeys × {len(REGIONS)} regions, a run every {args.interval}, "
              f"{2 * args.days} days (the period and the one before): {runs:,} runs\n")
        print(table(["source", "scorecard (json), median s", "worst s", "HTML page with timeline, s", "page"],
                    rows))
        print("\n" + others.note())
    finally:
        influx.stop()
        prom.stop()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
