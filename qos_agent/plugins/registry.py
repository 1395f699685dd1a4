"""The one registry of probes and exporters, keyed by kind: the runner and validation share it.

Plug-ins come from entry points (groups `qos_agent.probes`, `qos_agent.exporters`), so a third
party adds a probe by installing a package; the built-in ones are listed too, so a source checkout
works without an install.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

BUILTIN_PROBES = {
    "http": "probes.http:HttpProbe",
    "browser": "probes.browser:BrowserProbe",
    "tls": "probes.tls:TlsProbe",
    "tcp": "probes.tcp:TcpProbe",
    "dns": "probes.dns:DnsProbe",
    "websocket": "probes.websocket:WebSocketProbe",
    "grpc": "probes.grpc_health:GrpcProbe",
}
BUILTIN_EXPORTERS = {
    "sqlite": "exporters.sqlite:SqliteExporter",
    "jsonl": "exporters.jsonl:JsonlExporter",
    "junit": "exporters.junit:JunitExporter",
    "influxdb": "exporters.influxdb:InfluxDBExporter",
}


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _refs(group: str, builtins: dict[str, str]) -> dict[str, str]:
    refs = dict(builtins)
    for ep in entry_points(group=group):
        refs[ep.name] = ep.value
    return refs


@cache
def probe_refs() -> dict[str, str]:
    return _refs("qos_agent.probes", BUILTIN_PROBES)


@cache
def exporter_refs() -> dict[str, str]:
    return _refs("qos_agent.exporters", BUILTIN_EXPORTERS)


@cache
def probe_class(kind: str) -> Any:
    return _load(probe_refs()[kind])


@cache
def exporter_class(kind: str) -> Any:
    return _load(exporter_refs()[kind])


def probe_kinds() -> list[str]:
    return sorted(probe_refs())


def exporter_types() -> list[str]:
    return sorted(exporter_refs())
