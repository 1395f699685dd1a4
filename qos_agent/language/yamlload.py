"""journeys.yaml text -> a tree of located Nodes, with `${VAR}` read from the environment.

We compose the tree ourselves from PyYAML's event stream (the C parser when present), iteratively,
so a hostile file cannot crash or exhaust the loader: nesting depth, values after alias expansion
and file size are bounded, recursive aliases and merge keys (`<<`) are refused, only the tags the
language uses are accepted, and every scalar conversion is guarded. Every refusal is a located
problem. Environment values are substituted here, once. A value is remembered as a secret when its
variable is listed under top-level `secrets:` (read once the tree is whole, so the list may come
last) or its name looks secret (`secrets.looks_secret`); a `:-default` is never a secret: it is
already in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from qos_agent.language.nodes import Node, Problems
from qos_agent.language.secrets import MIN_SECRET_LEN, looks_secret, maskable
from qos_agent.language.text import shown
from qos_agent.model import Location

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

MAX_BYTES = 5 * 2**20  # a journeys file is kilobytes; 5 MB is generous and parses in about a second
MAX_DEPTH = 64  # nesting levels (the language itself needs about 8)
MAX_VALUES = 100_000  # values in the tree, each use of an alias counted with everything under it
MAX_NUMBER_CHARS = 100  # longer digit strings are not numbers a journeys file means

_T = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL, MAP, SEQ, MERGE = (_T + t for t in ("str", "int", "float", "bool", "null", "map",
                                                                  "seq", "merge"))
SCALAR_TAGS = (STR, INT, FLOAT, BOOL, NULL)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1's implicit types minus timestamps and `=`: a date-like word stays a string."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_T + "timestamp", _T + "value")]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_RESOLVER: Any = _Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_CONSTRUCT: dict[str, Any] = {INT: _CONSTRUCTOR.construct_yaml_int, FLOAT: _CONSTRUCTOR.construct_yaml_float,
                              BOOL: _CONSTRUCTOR.construct_yaml_bool, NULL: _CONSTRUCTOR.construct_yaml_null}
_PLAIN_INT = re.compile(r"-?[1-9][0-9]{0,17}|0")


@dataclass(slots=True)
class Loaded:
    root: Node | None
    secrets: set[str] = field(default_factory=set)


_MERGE_KEY = object()  # a plain `<<` key, refused with its location


class _Stop(Exception):
    """A limit was hit: the problem is recorded, the rest of the file is not read."""


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file, 1, 1)


def decode(data: bytes, file: str, problems: Problems) -> str | None:
    """File bytes -> text; too large or not UTF-8 is a located problem."""
    if len(data) > MAX_BYTES:
        problems.add(Location(file, 1, 1), f"the file is {len(data) // 2**20} MB, more than the limit of "
                     f"{MAX_BYTES // 2**20} MB", "a journeys file is normally a few kilobytes: split it or trim it")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        head = data[: e.start]
        line = head.count(b"\n") + 1
        col = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        problems.add(Location(file, line, col), f"byte 0x{data[e.start]:02x} is not UTF-8 text",
                     "save the file as UTF-8")
        return None
    return text.removeprefix("\ufeff")


@dataclass(slots=True)
class _Frame:
    loc: Location
    items: dict[str, Node] | list[Node]
    anchor: str | None
    key_locs: dict[str, Location] = field(default_factory=dict)
    key: str | None = None  # a mapping's key waiting for its value
    skip_value: bool = False  # the key was refused: drop its value
    size: int = 1
    height: int = 1


class _Composer:
    def __init__(self, file: str, env: Mapping[str, str], problems: Problems) -> None:
        self.file = file
        self.env = env
        self.problems = problems
        self.used: list[tuple[str, str, Location]] = []  # (variable, value, where) read from the environment
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Node, int, int]] = {}  # name -> (node, values under it, height)
        self.open_anchors: set[str] = set()
        self.values = 0
        self.root: Node | None = None
        self.documents = 0

    def stop(self, loc: Location, what: str, fix: str) -> _Stop:
        self.problems.add(loc, what, fix)
        return _Stop()

    def feed(self, event: Any) -> None:
        loc = _loc(self.file, event.start_mark)
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.stop(loc, "a second YAML document ('---') in the file", "keep one document per file")
        elif isinstance(event, yaml.ScalarEvent):
            self.attach(self.scalar(event, loc), 1, 0, event.anchor, loc)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            is_map = isinstance(event, yaml.MappingStartEvent)
            if event.tag not in (None, "!", MAP if is_map else SEQ):
                self.problems.add(loc, f"the tag {shown(str(event.tag).replace(_T, '!!'))} is not part of the language",
                                  "remove the tag")
            if len(self.stack) >= MAX_DEPTH:
                raise self.stop(loc, f"nesting is deeper than {MAX_DEPTH} levels", "flatten the structure")
            self.count(1, loc)
            if event.anchor is not None:
                self.open_anchors.add(event.anchor)
            self.stack.append(_Frame(loc, {} if is_map else [], event.anchor))
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            frame = self.stack.pop()
            if frame.anchor is not None:
                self.open_anchors.discard(frame.anchor)
            node = Node(frame.items, frame.loc, frame.key_locs)
            self.attach(node, frame.size, frame.height, frame.anchor, frame.loc, counted=True)
        elif isinstance(event, yaml.AliasEvent):
            self.alias(str(event.anchor), loc)

    def alias(self, name: str, loc: Location) -> None:
        if name in self.open_anchors:
            raise self.stop(loc, f"the alias *{shown(name)[1:-1]} refers to the value that contains it",
                            "a value cannot contain itself: remove the alias")
        if name not in self.anchors:
            raise self.stop(loc, f"the alias *{shown(name)[1:-1]} has no anchor before it",
                            f"define &{shown(name)[1:-1]} earlier in the file")
        node, size, height = self.anchors[name]
        if len(self.stack) + height > MAX_DEPTH:
            raise self.stop(loc, f"this alias nests values deeper than {MAX_DEPTH} levels", "flatten the structure")
        self.count(size, loc, "aliases expand to more than")
        self.attach(node, size, height, None, loc, counted=True)

    def count(self, n: int, loc: Location, how: str = "the file holds more than") -> None:
        self.values += n
        if self.values > MAX_VALUES:
            raise self.stop(loc, f"{how} {MAX_VALUES} values", "use fewer aliases and a smaller file")

    def attach(self, node: Node, size: int, height: int, anchor: str | None, loc: Location,
               counted: bool = False) -> None:
        if not counted:
            self.count(size, loc)
        if anchor is not None:
            self.anchors[anchor] = (node, size, height)
        if not self.stack:
            self.root = node
            return
        frame = self.stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if isinstance(frame.items, list):
            frame.items.append(node)
        elif frame.key is None and not frame.skip_value:
            self.take_key(frame, node, loc)
        else:
            if not frame.skip_value and frame.key is not None:
                frame.items[frame.key] = node
            frame.key, frame.skip_value = None, False

    def take_key(self, frame: _Frame, node: Node, loc: Location) -> None:
        assert isinstance(frame.items, dict)
        key = node.value
        if key is _MERGE_KEY:
            self.problems.add(loc, "merge keys ('<<') are not part of the language",
                              "write the keys out (or use 'defaults:' for what journeys share)")
            frame.skip_value = True
        elif isinstance(key, dict | list) or key is None or key == "":
            self.problems.add(loc, "a key must be a plain name", "write 'name: value'")
            frame.skip_value = True
        else:
            key = str(key)
            if key in frame.items or key in frame.key_locs:
                self.problems.add(loc, f"duplicate key {shown(key)} (first at line {frame.key_locs[key].line})",
                                  "remove one of them")
                frame.skip_value = True
            else:
                frame.key_locs[key] = loc
                frame.key = key

    def scalar(self, event: Any, loc: Location) -> Node:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
        text: str = event.value
        top = self.stack[-1] if self.stack else None
        is_key = top is not None and isinstance(top.items, dict) and top.key is None and not top.skip_value
        if is_key:
            if tag == MERGE:
                return Node(_MERGE_KEY, loc)
            return Node(text, loc)  # keys are names as written (`200:` is the key '200')
        if tag == STR:
            return Node(self.substitute(text, loc), loc)
        if tag == MERGE:
            return Node(text, loc)
        if tag not in SCALAR_TAGS:
            self.problems.add(loc, f"the tag {shown(tag.replace(_T, '!!'))} is not part of the language",
                              "remove the tag, or quote the value to make it a string")
            return Node(text, loc)
        try:
            if tag in (INT, FLOAT) and len(text) > MAX_NUMBER_CHARS:
                raise ValueError("too long")
            if tag == INT and _PLAIN_INT.fullmatch(text):
                return Node(int(text), loc)  # the common case, without PyYAML's general machinery
            value = _CONSTRUCT[tag](yaml.ScalarNode(tag, text))
        except Exception:  # PyYAML raises ValueError, KeyError, ConstructorError...: all one answer
            kind = {INT: "a whole number", FLOAT: "a number", BOOL: "true or false", NULL: "null"}.get(tag, "a value")
            self.problems.add(loc, f"{shown(text)} is not {kind}", "fix the value, or quote it to make it a string")
            return Node(text, loc)
        return Node(value, loc)

    def substitute(self, text: str, loc: Location) -> str:
        if "${" not in text:
            return text
        out: list[str] = []
        pos = 0
        broken = False
        while (start := text.find("${", pos)) != -1:
            out.append(text[pos:start])
            m = ENV_REF.match(text, start)
            if m is None or "${" in (m.group(2) or ""):
                broken = True
                what = "a nested ${...} inside a default" if m is not None else f"{shown(text[start:start + 30])}"
                self.problems.add(loc, f"{what} is not a valid ${{NAME}} or ${{NAME:-default}}",
                                  "names are letters, digits and '_' (not starting with a digit), closed by '}'")
                pos = m.end() if m is not None else start + 2
                continue
            out.append(self.lookup(m.group(1), m.group(2), loc))
            pos = m.end()
        out.append(text[pos:])
        return text if broken else "".join(out)

    def lookup(self, name: str, default: str | None, loc: Location) -> str:
        if name in self.env:
            value = self.env[name]
            self.used.append((name, value, loc))
            return value
        if default is not None:
            return default
        self.problems.add(loc, f"environment variable {name} is not set",
                          f"export {name}=... or give a default: ${{{name}:-value}}")
        return ""


def _reader_error_loc(file: str, text: str, position: int) -> Location:
    data = text.encode("utf-8", "replace")[:position]
    return Location(file, data.count(b"\n") + 1, len(data[data.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1)


def load_nodes(text: str, file: str, env: Mapping[str, str], problems: Problems) -> Loaded:
    """Parse YAML text into located Nodes; syntax errors and refused input become problems, never exceptions."""
    if len(text) > MAX_BYTES:
        problems.add(Location(file, 1, 1), f"the file is longer than {MAX_BYTES // 2**20} MB", "split it or trim it")
        return Loaded(None)
    composer = _Composer(file, env, problems)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            composer.feed(event)
    except _Stop:
        return Loaded(None)
    except yaml.MarkedYAMLError as e:
        what = " ".join(str(x) for x in (e.context, e.problem) if x)
        problems.add(_loc(file, e.problem_mark or e.context_mark), f"YAML syntax error: {what}",
                     "check indentation, colons and quotes near here")
        return Loaded(None)
    except yaml.reader.ReaderError as e:
        code = ord(e.character) if isinstance(e.character, str) else int(e.character)
        problems.add(_reader_error_loc(file, text, e.position), f"character U+{code:04X} is not "
                     f"allowed in YAML ({e.reason})", "remove it or write it as an escape inside double quotes")
        return Loaded(None)
    except yaml.YAMLError as e:  # anything else PyYAML may raise: one located line, never a traceback
        problems.add(Location(file, 1, 1), f"YAML error: {type(e).__name__}", "fix the YAML syntax")
        return Loaded(None)
    if composer.root is None:
        problems.add(Location(file, 1, 1), "the file is empty", "start with 'version: 1' and a 'journeys:' list")
        return Loaded(None)
    return Loaded(composer.root, secrets_of(composer.used, declared_secrets(composer.root), problems))


def declared_secrets(root: Node) -> set[str]:
    """The names under top-level `secrets:` (the loader validates the list itself)."""
    node = root.get("secrets") if root.is_map else None
    if node is None or not node.is_list:
        return set()
    return {str(item.value) for item in node.value if isinstance(item.value, str)}


def secrets_of(used: list[tuple[str, str, Location]], declared: set[str], problems: Problems) -> set[str]:
    """Values of declared or secret-looking variables; one too short to mask is a warning, not a leak."""
    secrets: set[str] = set()
    for name, value, loc in used:
        if not value or not (name in declared or looks_secret(name)):
            continue
        if maskable(value):
            secrets.add(value)
        else:
            problems.warn(loc, f"secret ${{{name}}} is shorter than {MIN_SECRET_LEN} characters and cannot be "
                          "masked without masking ordinary text", "use a longer secret; this one may appear in outputs")
    return secrets
