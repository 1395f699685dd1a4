"""The one registry of probes and exporters, keyed by kind: the runner and validation share it.

Plug-ins come from entry points (groups `qos_agent.probes`, `qos_agent.exporters`), so a third
party adds a probe by installing a package; the built-in ones are listed too, so a source checkout
works without an install. A built-in name is resolved without reading the entry points (importing
importlib.metadata and scanning every installed distribution costs ~30 ms at each start), so a
plug-in adds kinds but cannot take a built-in's name: the built-in wins there too.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from typing import Any, cast

from qos_agent.errors import SetupError
from qos_agent.plugins.conformance import problems_of
from qos_agent.plugins.sinks import Exporter, ExporterEnv, SinkType
from qos_agent.plugins.steps import Probe, StepKind

log = logging.getLogger(__name__)

BUILTIN_PROBES = {  # each names the kind's light class; its probe() imports what running needs
    "http": "probes.http.config:HttpKind",
    "browser": "probes.browser.config:BrowserKind",
    "tls": "probes.net.tls.config:TlsKind",
    "tcp": "probes.net.tcp.config:TcpKind",
    "dns": "probes.net.dns.config:DnsKind",
    "websocket": "probes.websocket.config:WebSocketKind",
    "grpc": "probes.grpc.config:GrpcKind",
    "script": "probes.script.config:ScriptKind",
}
BUILTIN_EXPORTERS = {  # the light sink types (config and schema); each imports its run-time side in `create`
    "sqlite": "exporters.files.config:SqliteType",
    "jsonl": "exporters.files.config:JsonlType",
    "junit": "exporters.files.config:JunitType",
    "influxdb": "exporters.influxdb.config:InfluxDBType",
    "alertmanager": "exporters.alerts.config:AlertmanagerType",
    "webhook": "exporters.alerts.config:WebhookType",
    "prometheus_remote_write": "exporters.prometheus.config:RemoteWriteType",
    "otlp": "exporters.otlp.config:OtlpType",
}


class PluginError(SetupError):
    """A registered plug-in cannot be used; `what` and `fix` let the loader locate it in the file."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what} ({fix})")
        self.what = what
        self.fix = fix


def _load(ref: str, protocol: type) -> type:
    """The class an entry point names, checked against its protocol (a one-line refusal)."""
    module, _, attr = ref.partition(":")
    try:
        found = vars(importlib.import_module(module)).get(attr)
    except Exception as e:  # a third party's module that fails to import: one line, never a traceback
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise PluginError(f"plug-in {ref} cannot be imported: {type(e).__name__}{': ' + first if first else ''}",
                          "install the plug-in's dependencies, or fix or uninstall the plug-in") from None
    if not isinstance(found, type):
        raise PluginError(f"plug-in {ref} is not a class", "fix the entry point")
    problems = problems_of(found, protocol)
    if problems:
        raise PluginError(f"plug-in {ref} does not implement {protocol.__name__}: {'; '.join(problems)}",
                          f"subclass {protocol.__module__}.{protocol.__name__} and implement them")
    return found


def _refs(group: str, builtins: dict[str, str]) -> dict[str, str]:
    from importlib.metadata import entry_points

    return {**{ep.name: ep.value for ep in entry_points(group=group)}, **builtins}


@cache
def probe_refs() -> dict[str, str]:
    return _refs("qos_agent.probes", BUILTIN_PROBES)


@cache
def exporter_refs() -> dict[str, str]:
    return _refs("qos_agent.exporters", BUILTIN_EXPORTERS)


@cache
def step_kind(kind: str) -> type[StepKind[Any]]:
    """The registered class of a step kind (light: its probe is made by `make_probe`)."""
    return cast("type[StepKind[Any]]", _load(BUILTIN_PROBES.get(kind) or probe_refs()[kind], StepKind))


def make_probe(kind: str) -> Probe:
    """A new probe for a kind, checked against the Probe protocol (a third party's too)."""
    probe = step_kind(kind).probe()
    if problems := problems_of(type(probe), Probe):
        ref = BUILTIN_PROBES.get(kind) or probe_refs()[kind]
        raise PluginError(f"the probe of plug-in {ref} does not implement Probe: {'; '.join(problems)}",
                          "subclass qos_agent.plugins.steps.Probe and implement them")
    return probe


@cache
def exporter_class(kind: str) -> type[SinkType[Any]]:
    return cast("type[SinkType[Any]]", _load(BUILTIN_EXPORTERS.get(kind) or exporter_refs()[kind], SinkType))


def make_sink(kind: str, spec: Any, env: ExporterEnv) -> Exporter:
    """The sink a type makes, checked like the type was (a third party's run-time class arrives only now)."""
    cls = exporter_class(kind)
    sink = cls.create(spec, env)
    problems = problems_of(type(sink), Exporter)
    if bool(sink.durable) != bool(cls.durable):
        problems.append(f"'durable' is {sink.durable} on the sink but {cls.durable} on its type")
    if problems:
        raise PluginError(f"the sink {kind} makes ({type(sink).__name__}) does not keep its protocol: "
                          f"{'; '.join(problems)}", "subclass qos_agent.plugins.sinks.Exporter or NetworkSink")
    return sink


def is_probe_kind(name: str) -> bool:
    """Whether a step key names a step kind (entry points read only for a name not built in)."""
    return name in BUILTIN_PROBES or name in probe_refs()


def is_exporter_type(name: str) -> bool:
    return name in BUILTIN_EXPORTERS or name in exporter_refs()


def probe_kinds() -> list[str]:
    return sorted(probe_refs())


def exporter_types() -> list[str]:
    return sorted(exporter_refs())
