"""The `prometheus_remote_write` sink: the journey series, as remote write 1.0, into any compatible store.

Prometheus (--web.enable-remote-write-receiver), Mimir, Thanos Receive, VictoriaMetrics, Cortex...
The sink keeps the same `JourneySeries` as the agent's `/metrics` (qos_agent/sinks/series.py): each point
updates it, and the series the point changed become one stored record, a serialized `WriteRequest`
whose samples carry the run's own timestamp. The core keeps records durably and sends them in
order (parallel: 1, so a series never arrives out of order); `send` concatenates a batch into one
request, snappy-compresses it, and hands the answer to the one send policy (qos_agent/sinks/policy.py:
remote write 1.0 retries 5xx and 429 and never other 4xx — out-of-order or too-old samples, a bad
label — which the core bisects down to the bad records and dead-letters; a wrong token or URL waits
for a human instead). A sample's id, for a receiver that sees a batch twice after `kill -9`, is its
series and timestamp: Prometheus-compatible stores ignore an identical sample written again.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from typing import ClassVar

from exporters.prometheus.config import RemoteWriteSpec
from exporters.prometheus.proto import compress, label_bytes, timeseries_entry
from qos_agent import __version__
from qos_agent.language.secrets import Redactor, header_secrets
from qos_agent.model import Point
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink
from qos_agent.sinks.http import Poster
from qos_agent.sinks.options import basic_auth
from qos_agent.sinks.series import Family, JourneySeries, Labels
from qos_agent.sinks.urls import without_userinfo

FIX = "check url, bearer_token/basic_auth and headers; points stay spooled until it works"


class PrometheusRemoteWriteSink(NetworkSink):
    type: ClassVar[str] = "prometheus_remote_write"

    def __init__(self, spec: RemoteWriteSpec, env: ExporterEnv) -> None:
        self.spec = spec
        self.env = env
        self.series = JourneySeries()
        # Per series (family, labels): for each of its samples, an index into last_ms and the label bytes.
        self.wire: dict[tuple[Family, Labels], list[tuple[int, bytes]]] = {}
        self.last_ms: list[int] = []  # each sample series' newest timestamp
        self.lock = threading.Lock()  # encode runs on a worker thread
        self.poster = Poster(where=without_userinfo(spec.url), timeout_s=spec.timeout_s, verify_tls=spec.verify_tls,
                             fix=FIX, mask=Redactor(self.credentials(), parent=env.redact))

    def credentials(self) -> list[str]:
        found = [self.spec.bearer_token, self.spec.password]
        found += [secret for name, value in self.spec.headers for secret in header_secrets(name, value)]
        return [c for c in found if c]

    def _headers(self) -> dict[str, str]:
        """The request's headers, credentials included: made per send, kept nowhere."""
        headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                   "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": f"qos-agent/{__version__}",
                   **dict(self.spec.headers)}
        if self.spec.bearer_token:
            headers["Authorization"] = f"Bearer {self.spec.bearer_token}"
        elif self.spec.username:
            headers["Authorization"] = basic_auth(self.spec.username, self.spec.password)
        return headers

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        # One request at a time: remote write wants each series' samples in time order.
        return DeliveryOptions(batch_size=self.spec.batch_size, flush_interval_s=self.spec.flush_interval_s,
                               max_spool_mb=self.spec.max_spool_mb, parallel=1)

    def encode(self, points: Sequence[Point]) -> list[str]:
        """One record per point that changed a series: base64 of a WriteRequest of those series' samples."""
        records = []
        with self.lock:
            for p in points:
                changed = self.series.observe(p)
                if changed:
                    records.append(self._record(changed, p.time_ms))
        return records

    def _record(self, changed: Sequence[tuple[Family, Labels]], time_ms: int) -> str:
        out = []
        for key in dict.fromkeys(changed):  # a series changed twice by one point is sent once
            wire = self.wire.get(key)
            if wire is None:
                wire = self.wire[key] = self._wire(*key)
            for (sid, labels), value in zip(wire, self.series.sample_values(*key), strict=True):
                ts = self.last_ms[sid] = max(time_ms, self.last_ms[sid] + 1)  # strictly increasing per series
                out.append(timeseries_entry(labels, value, ts))
        return base64.b64encode(b"".join(out)).decode("ascii")

    def _wire(self, family: Family, labels: Labels) -> list[tuple[int, bytes]]:
        """Once per series: its samples' full label sets (name, external labels) serialized by protobuf."""
        wire = []
        for s in self.series.samples(family, labels, 0):
            have = {k for k, _ in s.labels}
            extra = ((k, v) for k, v in self.spec.external_labels if k not in have)
            wire.append((len(self.last_ms), label_bytes(sorted((("__name__", s.name), *s.labels, *extra)))))
            self.last_ms.append(-1)
        return wire

    async def send(self, records: Sequence[str]) -> None:
        body = compress(b"".join(base64.b64decode(r) for r in records))
        await self.poster.post(self.spec.url, body, self._headers())

    async def close(self) -> None:
        await self.poster.close()
