"""The Prometheus source counts exactly where `increase()` would not: across an agent's restart (its
counters begin again at 0) and for a journey renamed mid-period (its series stops before the window
ends). The same two hours of results go to a SQLite store and, through the real remote-write sink
(one sink per agent life, as a restarted agent would have), into a real Prometheus; the scorecards
agree run for run. No agent series exist on this path, so the restart is found in the journey
counters themselves.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from pathlib import Path
from typing import Any

from exporters.prometheus.config import RemoteWriteSpec
from exporters.prometheus.remote_write import PrometheusRemoteWriteSink
from qos_agent.model import Point
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.reports.command import Options, read
from qos_agent.sinks.series import DURATION_BUCKETS
from tests.support import scorecard as sc
from tests.support.prometheus import PrometheusServer, needs_prometheus

MIN, HOUR = 60_000, 3_600_000


def rows(card: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["journey"], r["region"]): r for r in card["rows"]}


async def remote_write(prom: PrometheusServer, tmp: Path, lives: list[list[Point]]) -> None:
    """Each list of points through its own sink (a fresh agent process), all records sent in time order."""
    records: list[tuple[int, str]] = []
    sinks = []
    for i, points in enumerate(lives):
        sink = PrometheusRemoteWriteSink(RemoteWriteSpec(url=prom.url + "/api/v1/write", name=f"life{i}"),
                                         ExporterEnv(tmp, "test", f"life{i}"))
        sinks.append(sink)
        records += [(p.time_ms, record) for p in points for record in sink.encode([p])]
    records.sort(key=lambda r: r[0])
    try:
        for i in range(0, len(records), 200):
            await sinks[0].send([r for _, r in records[i:i + 200]])
    finally:
        for sink in sinks:
            await sink.close()


@needs_prometheus
async def test_prometheus_counts_exactly_across_a_restart_and_a_rename(tmp_path: Path) -> None:
    now = int(time.time() * 1000) // MIN * MIN
    start = now - 2 * HOUR
    restart_ms = start + 80 * MIN  # us-east's agent restarts here
    results = [dataclasses.replace(r, journey="search-v2")
               if r.journey == "search" and r.region == "eu-west" and r.start_ms >= start + 60 * MIN else r
               for r in sc.runs(start)]
    points = sc.points_of(results)
    journeys, db = tmp_path / "journeys.yaml", tmp_path / "qos-results.db"
    journeys.write_text(sc.JOURNEYS_YAML.replace("name: search", "name: search-v2"))
    await sc.write(db, points)
    us = [p for p in points if p.tag("region") == "us-east"]
    lives = [[p for p in points if p.tag("region") == "eu-west"],
             [p for p in us if p.time_ms < restart_ms], [p for p in us if p.time_ms >= restart_ms]]
    prom = PrometheusServer(tmp_path / "prom")
    prom.root.mkdir()
    prom.start()
    try:
        await remote_write(prom, tmp_path, lives)
        want = rows(read(Options(file=journeys, dbs=[db], since="2h"), now)[1].to_json())
        got = rows(read(Options(file=journeys, source="prometheus", url=prom.url, since="2h"), now)[1].to_json())
    finally:
        prom.stop()
    assert set(got) == set(want) == {("checkout", "eu-west"), ("checkout", "us-east"), ("search", "eu-west"),
                                     ("search-v2", "eu-west"), ("search", "us-east")}
    for key, row in want.items():
        assert (got[key]["runs"], got[key]["success_ratio"]) == (row["runs"], row["success_ratio"]), key
        assert got[key]["disrupted_minutes"] == row["disrupted_minutes"], key  # closed ones: the close's duration
        assert got[key]["hidden_minutes"] == row["hidden_minutes"], key
        p95 = (got[key]["p95_ms"], row["p95_ms"])
        assert bisect.bisect_left(DURATION_BUCKETS, p95[0] / 1000) == bisect.bisect_left(DURATION_BUCKETS, p95[1] / 1000)
    assert (want[("search", "eu-west")]["runs"], want[("search-v2", "eu-west")]["runs"]) == (60, 60)
    assert want[("checkout", "us-east")]["runs"] == 120  # both lives of the us-east agent
