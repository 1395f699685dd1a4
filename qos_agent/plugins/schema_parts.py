"""Building blocks for a plug-in's `json_schema()`: the generated schema's shared `$defs` by name
(duration, bool, text, ...), and closed objects over a parser's own key list, so every key a
parser reads is described and a key added without a type shows up as "anything" (a test catches it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A `$defs` entry of the generated file (qos_agent/config/schema.py DEFS)."""
    return {"$ref": f"#/$defs/{name}"}


ENV: Schema = ref("env")
DURATION: Schema = ref("duration")
BOOL: Schema = ref("bool")
STR_MAP: Schema = ref("str_map")
STR_LIST: Schema = ref("str_list")
TEXT: Schema = {"type": "string", "minLength": 1}


def or_env(schema: Schema) -> Schema:
    """Any scalar may be written as ${VAR} (substituted at load), so typed values accept that too."""
    return {"anyOf": [schema, ENV]}


def integer(minimum: int, maximum: int | None = None) -> Schema:
    s: Schema = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        s["maximum"] = maximum
    return or_env(s)


def enum(values: Iterable[Any]) -> Schema:
    return {"enum": list(values)}


def alternatives(words: Iterable[str]) -> str:
    """A case-insensitive regex alternation spelled for ECMA-262 too (which has no `(?i)`)."""
    return "|".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in w) for w in words)


def nocase(words: Iterable[str]) -> Schema:
    """Case-insensitive choice (the loader upper-cases, e.g. HTTP methods)."""
    return {"type": "string", "pattern": "^(" + alternatives(words) + ")$"}


def obj(keys: Iterable[str], types: dict[str, Schema], required: Iterable[str] = (), **extra: Any) -> Schema:
    """A closed object over the parser's key list; a key without a type here is left open."""
    s: Schema = {"type": "object", "additionalProperties": False, "properties": {k: types.get(k, {}) for k in keys}}
    if required := list(required):
        s["required"] = required
    s.update(extra)
    return s


def untyped(parts: dict[str, Schema]) -> list[str]:
    """Keys of a plug-in's parts that have no type (for the test that every key has one)."""
    out = []
    for key, schema in parts.items():
        for name, sub in schema.get("properties", {}).items():
            if sub == {} and name != "json":
                out.append(f"{key}.{name}")
    return out
