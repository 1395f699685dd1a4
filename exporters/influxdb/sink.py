"""The InfluxDB exporter (`type: influxdb`, `api: v1 | v2`): a network sink, so only encode + send.

The core keeps its records in `state_dir/spool/<name>.db` and its delivery loop sends from there
(qos_agent/delivery), so a slow or absent InfluxDB never slows a probe and nothing is lost across
outages or restarts. Problems a user can cause are located errors at validation (a malformed
URL, keys of the other API) or one clear log line at run time (wrong token, missing database); the
exporter keeps spooling either way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from exporters.influxdb.lineprotocol import encode_many
from exporters.influxdb.send import Target, V1Sender, V2Sender
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.text import shown as quoted
from qos_agent.model import Point
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink

V1_KEYS = frozenset({"database", "retention_policy", "username", "password", "create_database"})
V2_KEYS = frozenset({"org", "bucket", "token"})
COMMON_KEYS = frozenset({"type", "name", "url", "api", "gzip", "timeout", "batch_size", "flush_interval",
                         "max_spool_mb", "verify_tls"})
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass(frozen=True, slots=True)
class InfluxSpec:
    target: Target
    name: str  # the spool file's name: stable across restarts, so a restart replays what is left
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    max_spool_mb: float = 512.0


def _check_url(r: Reader, problems: Problems) -> str:
    url = r.str("url").rstrip("/")
    node = r.get("url")
    if node is None or not url:
        return url
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.query or parts.fragment:
        problems.add(node.loc, f"'url' is not an http(s) URL: {quoted(url)}", "write e.g. url: http://127.0.0.1:8086")
    return url


class InfluxDBExporter(NetworkSink[InfluxSpec]):
    """InfluxDB 1.x (`api: v1`) or 2.x/3.x/Cloud/1.8+ (`api: v2`), always through the core's spool."""

    type: ClassVar[str] = "influxdb"
    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> InfluxSpec | None:
        r = Reader(node, problems, COMMON_KEYS | V1_KEYS | V2_KEYS, "influxdb exporter", required=("url",))
        if not r.ok:
            return None
        before = len(problems)
        api = r.choice("api", ("v1", "v2"), "v1")
        url = _check_url(r, problems)
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
        target = Target(
            url=url, api=api, database=r.str("database"), retention_policy=r.str("retention_policy"),
            username=r.str("username"), password=r.str("password"), org=r.str("org"), bucket=r.str("bucket"),
            token=r.str("token"), create_database=r.bool("create_database", True), gzip=r.bool("gzip", True),
            timeout_s=r.duration("timeout", 10.0), verify_tls=r.bool("verify_tls", True))
        user_node = r.get("username")
        if user_node is not None and ":" in target.username:
            problems.add(user_node.loc, "'username' cannot contain ':' (HTTP basic auth)", "use a user without ':'")
        name = r.str("name")
        name_node = r.get("name")
        if name_node is not None and not _NAME.match(name):
            problems.add(name_node.loc, f"'name' must be letters, digits, '.', '_' or '-': {quoted(name)}",
                         "write e.g. name: influx-main")
        if not name:
            where = f"{api}|{url}|{target.database}|{target.retention_policy}|{target.org}|{target.bucket}"
            name = f"influxdb-{api}-{hashlib.sha1(where.encode()).hexdigest()[:8]}"
        max_mb = r.number("max_spool_mb", 512.0, maximum=1e6)
        mb_node = r.get("max_spool_mb")
        if max_mb is None or max_mb <= 0:
            if mb_node is not None:
                problems.add(mb_node.loc, "'max_spool_mb' must be more than 0", "write e.g. max_spool_mb: 512")
            max_mb = 512.0
        spec = InfluxSpec(target=target, name=name, batch_size=r.int("batch_size", 5000, 1, 1_000_000),
                          flush_interval_s=r.duration("flush_interval", 1.0), max_spool_mb=max_mb)
        return spec if len(problems) == before else None

    @classmethod
    def create(cls, spec: InfluxSpec, env: ExporterEnv) -> InfluxDBExporter:
        return cls(spec, env)

    def __init__(self, spec: InfluxSpec, env: ExporterEnv) -> None:
        self.spec = spec
        self.sender: V1Sender | V2Sender = V1Sender(spec.target) if spec.target.api == "v1" else V2Sender(spec.target)

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        return DeliveryOptions(batch_size=self.spec.batch_size, flush_interval_s=self.spec.flush_interval_s,
                               max_spool_mb=self.spec.max_spool_mb)

    def encode(self, points: Sequence[Point]) -> list[str]:
        return encode_many(points)

    async def send(self, records: Sequence[str]) -> None:
        await self.sender(records)

    async def close(self) -> None:
        await self.sender.close()
