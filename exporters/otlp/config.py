"""The `otlp` sink type: every run as an OpenTelemetry trace, sent as OTLP/HTTP protobuf to a
Collector, Tempo, Jaeger, Honeycomb... Its keys, located errors and JSON Schema; light to import.

    exporters:
      - type: otlp
        url: http://collector:4318/v1/traces
        headers: {x-honeycomb-team: "${HONEYCOMB_KEY}"}   # every header value is a credential: never stored

`create` imports the run-time side (exporters/otlp/sink.py: aiohttp, opentelemetry-proto) only when
the agent runs. Delivery is the core's durable layer, as for every network sink.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import Exporter, ExporterEnv, SinkType
from qos_agent.sinks.options import headers as sink_headers
from qos_agent.sinks.options import http_url, max_spool_mb, spool_name
from qos_agent.sinks.schemas import BOOL, DURATION, PATH, SPOOL_NAME, TEXT_MAP, Schema, entry, integer, positive

KEYS = frozenset({"type", "name", "url", "headers", "timeout", "batch_size", "flush_interval", "max_spool_mb",
                  "verify_tls"})
PROTOCOL_HEADERS = frozenset({"content-type", "content-encoding"})


@dataclass(frozen=True, slots=True)
class OtlpSpec:
    url: str
    name: str  # the spool file's name: stable across restarts
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 10.0
    verify_tls: bool = True
    batch_size: int = 50  # records (one per run: its spans) per request
    flush_interval_s: float = 1.0
    max_spool_mb: float = 512.0


class OtlpType(SinkType[OtlpSpec]):
    type: ClassVar[str] = "otlp"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> OtlpSpec | None:
        r = Reader(node, problems, KEYS, "otlp exporter", required=("url",))
        if not r.ok:
            return None
        before = len(problems)
        url = http_url(r.get("url"), r.str("url"), problems, "url: http://127.0.0.1:4318/v1/traces")
        headers = sink_headers(r, problems, PROTOCOL_HEADERS, "leave it out: OTLP/HTTP protobuf fixes it")
        name = spool_name(r, problems, f"otlp-{hashlib.sha1(url.encode()).hexdigest()[:8]}")
        spec = OtlpSpec(url=url, name=name, headers=headers,
                        timeout_s=r.duration("timeout", 10.0), verify_tls=r.bool("verify_tls", True),
                        batch_size=r.int("batch_size", 50, 1, 10_000),
                        flush_interval_s=r.duration("flush_interval", 1.0), max_spool_mb=max_spool_mb(r, problems))
        return spec if len(problems) == before else None

    @classmethod
    def json_schema(cls) -> Schema:
        types: dict[str, Schema] = {
            "name": SPOOL_NAME, "url": PATH, "headers": TEXT_MAP, "timeout": DURATION,
            "batch_size": integer(1, 10_000), "flush_interval": DURATION, "max_spool_mb": positive(1e6),
            "verify_tls": BOOL,
        }
        return entry(sorted(KEYS), types, required=("url",))

    @classmethod
    def create(cls, spec: OtlpSpec, env: ExporterEnv) -> Exporter:
        from exporters.otlp.sink import OtlpSink

        return OtlpSink(spec, env)
