"""The `influxdb` sink type (`api: v1 | v2`): its keys, located errors and JSON Schema; light to import.

`create` imports the run-time side (exporters/influxdb/sink.py: aiohttp, influxdb-client) only when
the agent runs, so `validate` of a file with an influxdb exporter imports neither.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import Exporter, ExporterEnv, SinkType
from qos_agent.sinks.options import http_url, max_spool_mb, spool_name
from qos_agent.sinks.schemas import (
    BOOL,
    DURATION,
    PATH,
    SPOOL_NAME,
    TEXT,
    Schema,
    entry,
    integer,
    positive,
)

V1_KEYS = frozenset({"database", "retention_policy", "username", "password", "create_database"})
V2_KEYS = frozenset({"org", "bucket", "token"})
COMMON_KEYS = frozenset({"type", "name", "url", "api", "gzip", "timeout", "batch_size", "flush_interval",
                         "max_spool_mb", "verify_tls"})
KEYS = COMMON_KEYS | V1_KEYS | V2_KEYS


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to write (the parts of the spec a sender needs). Credentials stay in memory:
    they are added to each request, never to a stored record."""

    url: str
    api: str
    database: str = ""
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    org: str = ""
    bucket: str = ""
    token: str = ""
    create_database: bool = True
    gzip: bool = True
    timeout_s: float = 10.0
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class InfluxSpec:
    target: Target
    name: str  # the spool file's name: stable across restarts, so a restart replays what is left
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    max_spool_mb: float = 512.0


def _api_keys(r: Reader, node: Node, api: str, problems: Problems) -> None:
    """Keys of the other API are located errors; each API's required keys are asked for."""
    own, other = (V1_KEYS, V2_KEYS) if api == "v1" else (V2_KEYS, V1_KEYS)
    for key in sorted(other):
        if r.has(key):
            problems.add(node.key_loc(key), f"'{key}' belongs to api: {'v2' if api == 'v1' else 'v1'}",
                         f"with api: {api} use {', '.join(sorted(own - {'create_database'}))}")
    if api == "v1" and not r.has("database"):
        problems.add(node.loc, "influxdb exporter (api: v1) needs 'database'", "add 'database: qos'")
    if api == "v2":
        for key in ("bucket", "org"):
            if not r.has(key):
                problems.add(node.loc, f"influxdb exporter (api: v2) needs '{key}'",
                             f"add '{key}: ...'" + (" (InfluxDB 1.8: org: '-')" if key == "org" else ""))


class InfluxDBType(SinkType[InfluxSpec]):
    """InfluxDB 1.x (`api: v1`) or 2.x/3.x/Cloud/1.8+ (`api: v2`), always through the core's spool."""

    type: ClassVar[str] = "influxdb"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> InfluxSpec | None:
        r = Reader(node, problems, KEYS, "influxdb exporter", required=("url",))
        if not r.ok:
            return None
        before = len(problems)
        api = r.choice("api", ("v1", "v2"), "v1")
        url = http_url(r.get("url"), r.str("url"), problems, "url: http://127.0.0.1:8086", query=False)
        _api_keys(r, node, api, problems)
        target = Target(
            url=url, api=api, database=r.str("database"), retention_policy=r.str("retention_policy"),
            username=r.str("username"), password=r.str("password"), org=r.str("org"), bucket=r.str("bucket"),
            token=r.str("token"), create_database=r.bool("create_database", True), gzip=r.bool("gzip", True),
            timeout_s=r.duration("timeout", 10.0), verify_tls=r.bool("verify_tls", True))
        user_node = r.get("username")
        if user_node is not None and ":" in target.username:
            problems.add(user_node.loc, "'username' cannot contain ':' (HTTP basic auth)", "use a user without ':'")
        where = f"{api}|{url}|{target.database}|{target.retention_policy}|{target.org}|{target.bucket}"
        name = spool_name(r, problems, f"influxdb-{api}-{hashlib.sha1(where.encode()).hexdigest()[:8]}")
        spec = InfluxSpec(target=target, name=name, batch_size=r.int("batch_size", 5000, 1, 1_000_000),
                          flush_interval_s=r.duration("flush_interval", 1.0), max_spool_mb=max_spool_mb(r, problems))
        return spec if len(problems) == before else None

    @classmethod
    def json_schema(cls) -> Schema:
        types: dict[str, Schema] = {
            "name": SPOOL_NAME, "url": PATH, "api": {"enum": ["v1", "v2"]}, "gzip": BOOL, "timeout": DURATION,
            "batch_size": integer(1, 1_000_000), "flush_interval": DURATION, "max_spool_mb": positive(1e6),
            "verify_tls": BOOL, "database": TEXT, "retention_policy": TEXT, "username": TEXT, "password": TEXT,
            "create_database": BOOL, "org": TEXT, "bucket": TEXT, "token": TEXT,
        }
        return entry(sorted(KEYS), types, required=("url",))

    @classmethod
    def create(cls, spec: InfluxSpec, env: ExporterEnv) -> Exporter:
        from exporters.influxdb.sink import InfluxDBExporter

        return InfluxDBExporter(spec, env)
