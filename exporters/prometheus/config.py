"""The `prometheus_remote_write` sink type: its keys, located errors and JSON Schema; light to import.

`create` imports the run-time side (exporters/prometheus/remote_write.py: aiohttp, protobuf,
cramjam, the journey series) only when the agent runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import Exporter, ExporterEnv, SinkType
from qos_agent.sinks.labels import LABEL, RESERVED_RULE, is_reserved
from qos_agent.sinks.options import headers as sink_headers
from qos_agent.sinks.options import http_url, max_spool_mb, spool_name
from qos_agent.sinks.schemas import (
    BOOL,
    DURATION,
    PATH,
    SPOOL_NAME,
    TEXT,
    TEXT_MAP,
    Schema,
    entry,
    integer,
    positive,
)

KEYS = frozenset({"type", "name", "url", "headers", "bearer_token", "basic_auth", "external_labels", "timeout",
                  "batch_size", "flush_interval", "max_spool_mb", "verify_tls"})
PROTOCOL_HEADERS = frozenset({"content-encoding", "content-type", "x-prometheus-remote-write-version"})


@dataclass(frozen=True, slots=True)
class RemoteWriteSpec:
    url: str
    name: str  # the spool file's name: stable across restarts
    headers: tuple[tuple[str, str], ...] = ()
    bearer_token: str = ""
    username: str = ""
    password: str = ""
    external_labels: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 10.0
    verify_tls: bool = True
    batch_size: int = 100  # records (one per point) per request
    flush_interval_s: float = 1.0
    max_spool_mb: float = 512.0


def _auth(r: Reader, node: Node, problems: Problems) -> tuple[str, str]:
    basic = r.get("basic_auth")
    if basic is None:
        return "", ""
    b = Reader(basic, problems, {"username", "password"}, "basic_auth", required=("username", "password"))
    user = b.str("username")
    if ":" in user:
        problems.add(basic.loc, "'basic_auth.username' cannot contain ':'", "use a user without ':'")
    if r.has("bearer_token"):
        problems.add(node.key_loc("bearer_token"), "use either 'bearer_token' or 'basic_auth', not both",
                     "remove one of them")
    return user, b.str("password")


def _labels(r: Reader, problems: Problems) -> tuple[tuple[str, str], ...]:
    labels = r.str_map("external_labels")
    n = r.get("external_labels")
    for name in labels:
        if n is not None and (not LABEL.match(name) or is_reserved(name)):
            problems.add(n.key_loc(name), f"external label '{name}' is not a free Prometheus label name",
                         f"use letters, digits and '_', not starting with a digit; not one of {RESERVED_RULE}")
    return tuple(sorted(labels.items()))


class RemoteWriteType(SinkType[RemoteWriteSpec]):
    type: ClassVar[str] = "prometheus_remote_write"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> RemoteWriteSpec | None:
        r = Reader(node, problems, KEYS, "prometheus_remote_write exporter", required=("url",))
        if not r.ok:
            return None
        before = len(problems)
        url = http_url(r.get("url"), r.str("url"), problems, "url: http://127.0.0.1:9090/api/v1/write")
        headers = sink_headers(r, problems, PROTOCOL_HEADERS | {"authorization"},
                               "use bearer_token or basic_auth for Authorization; the protocol headers are fixed")
        user, password = _auth(r, node, problems)
        name = spool_name(r, problems, f"prometheus-rw-{hashlib.sha1(url.encode()).hexdigest()[:8]}")
        spec = RemoteWriteSpec(
            url=url, name=name, headers=headers, bearer_token=r.str("bearer_token"),
            username=user, password=password, external_labels=_labels(r, problems),
            timeout_s=r.duration("timeout", 10.0), verify_tls=r.bool("verify_tls", True),
            batch_size=r.int("batch_size", 100, 1, 100_000), flush_interval_s=r.duration("flush_interval", 1.0),
            max_spool_mb=max_spool_mb(r, problems))
        return spec if len(problems) == before else None

    @classmethod
    def json_schema(cls) -> Schema:
        basic = entry(("username", "password"), {"username": TEXT, "password": TEXT}, required=("username", "password"))
        types: dict[str, Schema] = {
            "name": SPOOL_NAME, "url": PATH, "headers": TEXT_MAP, "bearer_token": TEXT, "basic_auth": basic,
            "external_labels": TEXT_MAP, "timeout": DURATION, "batch_size": integer(1, 100_000),
            "flush_interval": DURATION, "max_spool_mb": positive(1e6), "verify_tls": BOOL,
        }
        return entry(sorted(KEYS), types, required=("url",))

    @classmethod
    def create(cls, spec: RemoteWriteSpec, env: ExporterEnv) -> Exporter:
        from exporters.prometheus.remote_write import PrometheusRemoteWriteSink

        return PrometheusRemoteWriteSink(spec, env)
