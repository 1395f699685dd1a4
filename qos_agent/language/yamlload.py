"""journeys.yaml text -> a tree of located Nodes, with `${VAR}` read from the environment.

PyYAML composes the document (keeping marks); we build our own Node tree from it so every later
reader can name `file:line:col`. Environment values are substituted here, once; a value is
remembered as a secret when its variable is listed under top-level `secrets:` or its name looks
secret (`secrets.looks_secret`). A `:-default` is never a secret: it is already in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from qos_agent.language.nodes import Node, Problems
from qos_agent.language.secrets import MIN_SECRET_LEN, looks_secret, maskable
from qos_agent.model import Location

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(slots=True)
class Loaded:
    root: Node | None
    secrets: set[str] = field(default_factory=set)


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, file: str, env: Mapping[str, str], problems: Problems, declared: set[str]) -> None:
        self.file = file
        self.env = env
        self.problems = problems
        self.declared = declared  # names listed under top-level `secrets:`
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
                if value and (name in self.declared or looks_secret(name)):
                    if maskable(value):
                        self.secrets.add(value)
                    else:
                        self.problems.warn(loc, f"secret ${{{name}}} is shorter than {MIN_SECRET_LEN} characters "
                                           "and cannot be masked without masking ordinary text",
                                           "use a longer secret; this one may appear in outputs")
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
    builder = _Builder(file, env, problems, declared_secrets(document))
    root = builder.build(document)
    return Loaded(root, builder.secrets)


def declared_secrets(document: yaml.Node) -> set[str]:
    """The names under top-level `secrets:`, read before substitution (the loader validates them)."""
    if not isinstance(document, yaml.MappingNode):
        return set()
    for key, value in document.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "secrets" and isinstance(value, yaml.SequenceNode):
            return {item.value for item in value.value if isinstance(item, yaml.ScalarNode)}
    return set()
