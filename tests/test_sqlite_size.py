"""The embedded store is bounded by size as well as age: `max_mb`, the oldest points pruned first,
the early pruning counted and shown on /healthz and /metrics (Prometheus' retention.size)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from exporters.files.config import SqliteSpec, SqliteType
from qos_agent.delivery.pipeline import Pipeline
from qos_agent.language.nodes import Problems
from qos_agent.model import Point
from qos_agent.ops.health import Progress, assess
from qos_agent.ops.metrics import AgentMetrics
from qos_agent.ops.stats import AgentStats
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import ExporterEnv
from tests.test_exporters_local import node

MB = 1024 * 1024
TAGS = (("agent", "a1"), ("journey", "checkout"), ("kind", "journey"), ("region", "eu-west"))


def batch(start: int, n: int, t0: int) -> list[Point]:
    """n journey points a millisecond apart, each about 300 bytes stored."""
    return [Point("journey", TAGS, (("duration_ms", 12.5), ("success", True), ("outcome", "passed"),
                                    ("run_id", f"run-{i:08d}"), ("error_message", "x" * 120), ("final", True)),
                  t0 + i) for i in range(start, start + n)]


def test_max_mb_is_read_and_located(tmp_path: Path) -> None:
    load = LoadContext(tmp_path, tmp_path)
    problems = Problems()
    spec = SqliteType.from_config(node({"type": "sqlite"}), problems, load)
    assert spec == SqliteSpec(path=tmp_path / "qos-results.db", max_bytes=1024 * MB) and not problems
    assert SqliteType.from_config(node({"type": "sqlite", "max_mb": 2.5}), problems, load).max_bytes == int(2.5 * MB)
    SqliteType.from_config(node({"type": "sqlite", "max_mb": 0}), problems, load)
    SqliteType.from_config(node({"type": "sqlite", "max_mb": "lots"}), problems, load)
    assert [str(p) for p in problems.sorted()] == [
        "journeys.yaml:3:3: 'max_mb' must be a positive number of megabytes (write e.g. max_mb: 1024)",
        "journeys.yaml:3:3: 'max_mb' must be a number (write e.g. max_mb: 1.5)",
    ]


async def test_the_store_holds_its_bound_oldest_pruned_first_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    pipeline = Pipeline.of([SqliteType.create(SqliteSpec(path=db, max_bytes=2 * MB), ExporterEnv(tmp_path, "r", "a"))],
                           tmp_path)
    t0 = int(time.time() * 1000) - 3_600_000  # all well inside the retention: only the size prunes
    sizes = []
    for k in range(40):  # 40 x 500 points: about 6 MB written into a 2 MB store
        await pipeline.sinks[0].exporter.write(batch(k * 500, 500, t0))
        sizes.append(db.stat().st_size)
    stats = AgentStats(sinks=pipeline.snapshot())
    await pipeline.close()
    with sqlite3.connect(db) as conn:
        kept, first, last = conn.execute("SELECT count(*), min(time_ms), max(time_ms) FROM points").fetchone()
    conn.close()
    pruned = stats.sinks[0].stats.pruned
    assert pruned > 10_000 and kept + pruned == 20_000  # each point kept or counted pruned, once
    assert last == t0 + 19_999 and first == t0 + pruned  # the newest kept, the oldest gone first
    assert max(sizes) <= 2 * MB * 1.05, max(sizes)  # the file never outgrew max_mb (a check per 1 % of it)
    _, body = assess(stats, Progress())
    assert body["sinks"][0]["pruned"] == pruned  # type: ignore[index]
    text = AgentMetrics(lambda: stats).render().decode()
    assert f'qos_agent_sink_pruned_points_total{{sink="sqlite#0"}} {float(pruned)}' in text
