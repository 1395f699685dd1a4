"""The InfluxDB sink at run time: a network sink, so only encode + send.

The core keeps its records in `state_dir/spool/<name>.db` and its delivery loop sends from there
(qos_agent/delivery), so a slow or absent InfluxDB never slows a probe and nothing is lost across
outages or restarts. A record is one line of line protocol; its id, for a receiver that sees it
twice (a batch re-sent after `kill -9`), is InfluxDB's own: the series and the time, so a repeat
overwrites the same point. Credentials (password, token) are added to each request by the senders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from exporters.influxdb.config import InfluxSpec
from exporters.influxdb.lineprotocol import encode_many
from exporters.influxdb.send import V1Sender, V2Sender
from qos_agent.language.secrets import Redactor
from qos_agent.model import Point
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink


class InfluxDBExporter(NetworkSink):
    """InfluxDB 1.x (`api: v1`) or 2.x/3.x/Cloud/1.8+ (`api: v2`), always through the core's spool."""

    type: ClassVar[str] = "influxdb"

    def __init__(self, spec: InfluxSpec, env: ExporterEnv) -> None:
        self.spec = spec
        mask = Redactor(self.credentials(), parent=env.redact)
        self.sender: V1Sender | V2Sender = (V1Sender(spec.target, mask) if spec.target.api == "v1"
                                            else V2Sender(spec.target, mask))

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        return DeliveryOptions(batch_size=self.spec.batch_size, flush_interval_s=self.spec.flush_interval_s,
                               max_spool_mb=self.spec.max_spool_mb)

    def credentials(self) -> list[str]:
        return [c for c in (self.spec.target.password, self.spec.target.token) if c]

    def encode(self, points: Sequence[Point]) -> list[str]:
        return encode_many(points)

    async def send(self, records: Sequence[str]) -> None:
        await self.sender(records)

    async def close(self) -> None:
        await self.sender.close()
