"""journeys.yaml text -> a tree of located Nodes, with `${VAR}` read from the environment.

PyYAML composes the document (keeping marks); we build our own Node tree from it so every later
reader can name `file:line:col`. Environment values are substituted here, once, and remembered as
secrets (values a user wrote into the file as a `:-default` are not secrets: they are already
in the file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from qos_agent.language.nodes import Node, Problems
from qos_agent.model import Location

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MIN_SECRET_LEN = 4  # shorter values would mask every digit and short word in every message
NOT_SECRET_SECTIONS = ("agent",)  # identity and placement: region and name are tags, not secrets


@dataclass(slots=True)
class Loaded:
    root: Node | None
    secrets: set[str] = field(default_factory=set)


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, file: str, env: Mapping[str, str], problems: Problems) -> None:
        self.file = file
        self.env = env
        self.problems = problems
        self.secrets: set[str] = set()
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, section: str = "") -> Node:
        loc = _loc(self.file, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            out: dict[str, Node] = {}
            key_locs: dict[str, Location] = {}
            for key_node, value_node in node.value:
                kloc = _loc(self.file, key_node.start_mark)
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str) or isinstance(key_node, yaml.MappingNode | yaml.SequenceNode):
                    self.problems.add(kloc, "a key must be a plain name", "write 'name: value'")
                    continue
                if key in out:
                    self.problems.add(kloc, f"duplicate key '{key}' (first at line {key_locs[key].line})",
                                      "remove one of them")
                    continue
                key_locs[key] = kloc
                out[key] = self.build(value_node, section or key)
            return Node(out, loc, key_locs)
        if isinstance(node, yaml.SequenceNode):
            return Node([self.build(item, section) for item in node.value], loc)
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "tag:yaml.org,2002:str" or (isinstance(node.value, str) and "${" in node.value):
            return Node(self.substitute(node.value, loc, section), loc)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            self.problems.add(loc, f"cannot read this value: {e}", "quote it to make it a string")
            value = node.value
        return Node(value, loc)

    def substitute(self, text: str, loc: Location, section: str) -> str:
        if "${" not in text:
            return text

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in self.env:
                value = self.env[name]
                if section not in NOT_SECRET_SECTIONS and len(value) >= MIN_SECRET_LEN:
                    self.secrets.add(value)
                return value
            if default is not None:
                return default
            self.problems.add(loc, f"environment variable {name} is not set",
                              f"export {name}=... or give a default: ${{{name}:-value}}")
            return ""

        return ENV_REF.sub(sub, text)


def load_nodes(text: str, file: str, env: Mapping[str, str], problems: Problems) -> Loaded:
    """Parse YAML text into located Nodes; syntax errors become problems, never exceptions."""
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = _loc(file, mark) if mark else Location(file, 1, 1)
        what = " ".join(str(x) for x in (e.context, e.problem) if x)
        problems.add(loc, f"YAML syntax error: {what}", "check indentation, colons and quotes near here")
        return Loaded(None)
    except yaml.YAMLError as e:
        problems.add(Location(file, 1, 1), f"YAML error: {e}", "fix the YAML syntax")
        return Loaded(None)
    if document is None:
        problems.add(Location(file, 1, 1), "the file is empty", "start with 'version: 1' and a 'journeys:' list")
        return Loaded(None)
    builder = _Builder(file, env, problems)
    root = builder.build(document)
    return Loaded(root, builder.secrets)
