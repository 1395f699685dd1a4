"""`exporters:`: each entry's type found in the registry and its part parsed by the exporter; no
list at all means the embedded SQLite store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qos_agent.config.keys import DEFAULT_SQLITE
from qos_agent.config.steps import choices
from qos_agent.language.nodes import Node, Problems
from qos_agent.language.text import shown
from qos_agent.model import ExporterConfig, Location
from qos_agent.plugins import registry
from qos_agent.plugins.context import LoadContext


class SinkParser:
    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.problems = problems

    def exporters(self, node: Node | None, load: LoadContext) -> list[ExporterConfig]:
        if node is None:
            top = Location(str(self.path), 1, 1)
            default = Node({"type": Node(DEFAULT_SQLITE, top)}, top)
            return [ExporterConfig(DEFAULT_SQLITE, self.exporter_spec(DEFAULT_SQLITE, default, load), default.loc)]
        if not node.is_list:
            self.problems.add(node.loc, "'exporters' must be a list", "write '- type: sqlite' items")
            return []
        if not node.value:
            self.problems.add(node.loc, "'exporters' is empty: results would go nowhere",
                              "list a sink (- type: sqlite), or remove the key for the embedded SQLite store")
            return []
        out = []
        for item in node.value:
            type_node = item.get("type") if item.is_map else None
            if type_node is None:
                self.problems.add(item.loc, "an exporter needs a 'type'",
                                  "valid types: " + ", ".join(registry.exporter_types()))
                continue
            if not isinstance(type_node.value, str):
                self.problems.add(type_node.loc, f"an exporter's 'type' must be a name, not {shown(type_node.value)}",
                                  "valid types: " + ", ".join(registry.exporter_types()))
                continue
            kind = type_node.value
            if not registry.is_exporter_type(kind):
                self.problems.add(type_node.loc, f"unknown exporter type {shown(kind)}",
                                  choices(kind, registry.exporter_types()))
                continue
            spec = self.exporter_spec(kind, item, load)
            # A plug-in may make several sinks of one entry with `split(spec) -> [spec, ...]` (an
            # Alertmanager HA pair: one durable queue per instance, so one down never holds back the other).
            for one in registry.exporter_class(kind).split(spec) if spec is not None else [spec]:
                out.append(ExporterConfig(kind, one, item.loc))
        if out and not any(e.type == DEFAULT_SQLITE for e in out):  # issue 27: it used to be silent
            self.problems.warn(node.loc, "'exporters' has no sqlite store: `qos-agent report` has nothing local to "
                               "read (the embedded store is used only when 'exporters' is left out)",
                               "add '- type: sqlite', or read the scorecard with report --source influxdb|prometheus")
        return out

    def exporter_spec(self, kind: str, node: Node, load: LoadContext) -> Any:
        try:
            cls = registry.exporter_class(kind)
        except registry.PluginError as e:  # a broken third-party plug-in: located at its use
            self.problems.add(node.key_loc("type"), e.what, e.fix)
            return None
        return cls.from_config(node, self.problems, load)
