"""The `otlp` sink at run time: one record per run (its spans as one serialized ExportTraceServiceRequest,
base64 in the spool), one POST per batch of records.

Protobuf merges a repeated field when two serialized messages are concatenated, so a batch's body is
its records' bytes joined: one request holding every run's ResourceSpans, no re-encoding. The
answer goes to the one send policy (qos_agent/sinks/policy.py). Header values are credentials
(API keys ride in headers: `x-honeycomb-team`, `api-key`...): added per request, masked in
messages, never stored.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import ClassVar

from exporters.otlp.config import OtlpSpec
from exporters.otlp.spans import runs
from exporters.otlp.wire import encode_run
from qos_agent import __version__
from qos_agent.language.secrets import Redactor
from qos_agent.model import Point
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink
from qos_agent.sinks.http import Poster
from qos_agent.sinks.urls import without_userinfo

FIX = "check the OTLP endpoint's URL (…/v1/traces) and its headers (an API key?)"


class OtlpSink(NetworkSink):
    type: ClassVar[str] = "otlp"

    def __init__(self, spec: OtlpSpec, env: ExporterEnv) -> None:
        self.spec = spec
        self.env = env
        self.poster = Poster(where=without_userinfo(spec.url), timeout_s=spec.timeout_s, verify_tls=spec.verify_tls,
                             fix=FIX, mask=Redactor(self.credentials(), parent=env.redact))

    def credentials(self) -> list[str]:
        return [value for _, value in self.spec.headers if value]

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        return DeliveryOptions(batch_size=self.spec.batch_size, flush_interval_s=self.spec.flush_interval_s,
                               max_spool_mb=self.spec.max_spool_mb)

    def encode(self, points: Sequence[Point]) -> list[str]:
        """One record per run: its spans, serialized (points of other measurements are not spans)."""
        out = []
        for run in runs(points):
            request = encode_run(run)
            if request is not None:
                out.append(base64.b64encode(request).decode("ascii"))
        return out

    async def send(self, records: Sequence[str]) -> None:
        body = b"".join(base64.b64decode(r) for r in records)
        headers = {"Content-Type": "application/x-protobuf", "User-Agent": f"qos-agent/{__version__}",
                   **dict(self.spec.headers)}
        await self.poster.post(self.spec.url, body, headers)

    async def close(self) -> None:
        await self.poster.close()
