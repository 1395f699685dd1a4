"""The influxdb exporter's config: located errors at validation, sane defaults, stable spool names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.influxdb.config import InfluxDBType, InfluxSpec
from qos_agent.delivery.pipeline import Pipeline
from qos_agent.language.nodes import Node, Problems
from qos_agent.model import Location
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import ExporterEnv


def parse(cfg: dict[str, Any]) -> tuple[InfluxSpec | None, list[str]]:
    nodes = {k: Node(v, Location("journeys.yaml", 10 + i, 5)) for i, (k, v) in enumerate(cfg.items())}
    node = Node(nodes, Location("journeys.yaml", 9, 3), key_locs={k: n.loc for k, n in nodes.items()})
    problems = Problems()
    spec = InfluxDBType.from_config(node, problems, LoadContext(Path("."), Path(".")))
    return spec, [str(p) for p in problems.sorted()]


def test_v1_defaults() -> None:
    spec, problems = parse({"type": "influxdb", "url": "http://127.0.0.1:8086/", "database": "qos"})
    assert not problems and spec is not None
    t = spec.target
    assert (t.api, t.url, t.create_database, t.gzip, t.timeout_s, t.verify_tls) == \
        ("v1", "http://127.0.0.1:8086", True, True, 10.0, True)
    assert (spec.batch_size, spec.flush_interval_s, spec.max_spool_mb) == (5000, 1.0, 512.0)
    assert spec.name.startswith("influxdb-v1-")
    again, _ = parse({"type": "influxdb", "url": "http://127.0.0.1:8086/", "database": "qos"})
    assert again is not None and again.name == spec.name  # stable: a restart finds its spool


def test_malformed_url_is_a_located_error() -> None:
    for url in ("127.0.0.1:8086", "ftp://host", "http://", "http://host:99999", "not a url"):
        spec, problems = parse({"type": "influxdb", "url": url, "database": "qos"})
        assert spec is None
        assert problems and problems[0].startswith("journeys.yaml:11:5: 'url' "), problems
        assert "has no scheme" in problems[0] or "is not an http(s) URL" in problems[0]


def test_keys_of_the_other_api_and_missing_keys() -> None:
    _, problems = parse({"type": "influxdb", "url": "http://h", "api": "v2", "database": "x"})
    text = "\n".join(problems)
    assert "journeys.yaml:13:5: 'database' belongs to api: v1 (with api: v2 use bucket, org, token)" in text
    assert "needs 'bucket'" in text and "needs 'org'" in text
    _, problems = parse({"type": "influxdb", "url": "http://h"})
    assert any("needs 'database'" in p for p in problems)
    _, problems = parse({"type": "influxdb", "url": "http://h", "database": "d", "api": "v3", "bacth_size": 5})
    assert any("'api' is 'v3'" in p for p in problems)
    assert any("unknown key 'bacth_size'" in p and "batch_size" in p for p in problems)


def test_numbers_and_durations() -> None:
    spec, problems = parse({"type": "influxdb", "url": "https://influx.example:8086", "api": "v2", "org": "o",
                            "bucket": "b", "token": "t", "timeout": "2s", "flush_interval": "250ms",
                            "batch_size": 100, "max_spool_mb": 1.5, "gzip": False, "verify_tls": False,
                            "name": "main"})
    assert not problems and spec is not None
    assert (spec.target.timeout_s, spec.flush_interval_s, spec.batch_size, spec.max_spool_mb, spec.name) == \
        (2.0, 0.25, 100, 1.5, "main")
    _, problems = parse({"type": "influxdb", "url": "http://h", "database": "d", "max_spool_mb": 0,
                         "timeout": "soon", "name": "../x"})
    assert len(problems) == 3


async def test_each_exporter_has_its_own_spool_file(tmp_path: Path) -> None:
    a, _ = parse({"type": "influxdb", "url": "http://h1", "database": "d"})
    b, _ = parse({"type": "influxdb", "url": "http://h2", "database": "d"})
    assert a is not None and b is not None
    env = ExporterEnv(state_dir=tmp_path, region="r", agent="a")
    pipeline = Pipeline.of([InfluxDBType.create(a, env), InfluxDBType.create(b, env)], tmp_path)
    da, db = (s.durable for s in pipeline.sinks)
    assert da is not None and db is not None
    assert da.store.path != db.store.path and da.store.path.parent == tmp_path / "spool"
    assert InfluxDBType.durable and InfluxDBType.type == "influxdb"
    for d in (da, db):
        d.with_options(close_timeout_s=0.1)
    await pipeline.close()
