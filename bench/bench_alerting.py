"""Alert delivery latency: from a disruption point leaving the evaluator to a real Alertmanager accepting it.

The whole core path: `Pipeline.submit_points` -> the sink's bounded queue (linger) -> `encode` on the
store's worker thread -> the durable store -> the delivery loop -> `send` (POST /api/v2/alerts) ->
200. The clock stops when `send` returns for the batch holding that alert. Loads: one disruption at
a time (the usual case: alerts are rare), open-loop arrivals at 20/s, and a burst of 50 opening at
once (a regional outage across many journeys). The peer in the same run: one bare aiohttp POST of
the same alert (the floor any sender pays).
Run: `.venv/bin/python -m bench.bench_alerting [N]` (default 200 per load).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from exporters.alerts.alertmanager import AlertmanagerSink
from qos_agent.config.loader import load_config
from qos_agent.delivery.pipeline import Pipeline
from qos_agent.language.secrets import Redactor
from qos_agent.model import Point
from tests.support.alertmanager import AlertmanagerServer

CONFIG = """\
version: 1
agent: {{state_dir: "{state}", name: bench, listen: "127.0.0.1:0"}}
exporters:
  - {{type: alertmanager, url: "{url}", resend: 1m}}
journeys:
  - name: j
    steps: [{{name: s, http: {{url: "http://127.0.0.1:1/"}}}}]
"""

accepted: dict[str, float] = {}
_send = AlertmanagerSink.send


async def timed_send(self: AlertmanagerSink, records: Sequence[str]) -> None:
    await _send(self, records)
    now = time.perf_counter()
    for record in records:
        accepted.setdefault(json.loads(record)["key"], now)


def opened(journey: str, t_ms: int) -> Point:
    tags = (("agent", "bench"), ("journey", journey), ("region", "eu-west"), ("state", "open"))
    fields = (("reason", "2 consecutive failed runs"), ("success_ratio", 0.5), ("latency_p95_ms", 10.0),
              ("uptime_ok", True), ("opened_ms", t_ms), ("failed_step", "pay"), ("error", "status"),
              ("error_message", "HTTP 503"))
    return Point("disruption", tags, fields, t_ms)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def through_the_agent(url: str, state: Path, n: int, rate: float | None, burst: bool, tag: str) -> list[float]:
    config = load_config_text(CONFIG.format(state=state, url=url), state)
    pipeline = Pipeline.from_config(config, Redactor())
    pipeline.start()
    submitted: dict[str, float] = {}
    try:
        await asyncio.sleep(0.5)  # the sink's delivery is running
        for i in range(n):
            key = f"bench/{tag}{i}/eu-west"
            submitted[key] = time.perf_counter()
            pipeline.submit_points([opened(f"{tag}{i}", int(time.time() * 1000))])
            if burst:
                continue
            await asyncio.sleep(1 / rate if rate else 0.0)
            if rate is None:  # one at a time: wait for it
                deadline = time.monotonic() + 10
                while key not in accepted and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
        deadline = time.monotonic() + 60
        while any(k not in accepted for k in submitted) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await pipeline.close()
    return [(accepted[k] - t) * 1000 for k, t in submitted.items() if k in accepted]


def load_config_text(text: str, state: Path) -> Any:
    path = state / "journeys.yaml"
    path.write_text(text)
    return load_config(path, env={})


async def bare_posts(url: str, n: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as http:
        for i in range(n):
            alert = [{"labels": {"alertname": "Bare", "i": str(i)}, "annotations": {"summary": "x"},
                      "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
            t0 = time.perf_counter()
            async with http.post(f"{url}/api/v2/alerts", json=alert) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def main(n: int) -> None:
    AlertmanagerSink.send = timed_send  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        server = AlertmanagerServer(Path(tmp) / "am")
        server.start()
        try:
            rows = [("bare aiohttp POST (peer, the floor)", await bare_posts(server.url, n))]
            for label, rate, burst, tag in (("agent: one at a time", None, False, "one"),
                                            ("agent: open loop 20/s", 20.0, False, "open"),
                                            ("agent: burst of 50", None, True, "burst")):
                state = Path(tmp) / tag
                state.mkdir()
                count = 50 if burst else n
                rows.append((label, await through_the_agent(server.url, state, count, rate, burst, tag)))
        finally:
            server.stop()
    print(f"\nalert delivery latency to a real Alertmanager (ms), {n} disruptions per load")
    print(f"{'load':<40} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8} {'mean':>8}")
    for label, values in rows:
        print(f"{label:<40} {len(values):>5} {pct(values, 0.5):>8.1f} {pct(values, 0.99):>8.1f} "
              f"{max(values):>8.1f} {statistics.fmean(values):>8.1f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
