"""Words for a sink type's JSON Schema (`SinkType.json_schema`), so each describes itself in a few lines.

`$ref`s point at the shared `$defs` of the generated file (qos_agent/config/schema.py: env,
duration, bool, text, str_map). `entry` closes an object over the parser's own key list: a key
read by `from_config` without a type here becomes "anything", and tests/test_schema.py catches it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Schema = dict[str, Any]

ENV: Schema = {"$ref": "#/$defs/env"}
DURATION: Schema = {"$ref": "#/$defs/duration"}
BOOL: Schema = {"$ref": "#/$defs/bool"}
TEXT: Schema = {"$ref": "#/$defs/text"}
STR_MAP: Schema = {"$ref": "#/$defs/str_map"}
TEXT_MAP: Schema = {"type": "object", "additionalProperties": TEXT}
SPOOL_NAME: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$",
                      "description": "the durable store's file name (state_dir/spool/NAME.db)"}
HTTP_URL: Schema = {"type": "string", "pattern": r"^(https?://|\$\{)"}
PATH: Schema = {"type": "string", "minLength": 1}


def or_env(schema: Schema) -> Schema:
    """A typed scalar may be written as ${VAR} too (substituted at load)."""
    return {"anyOf": [schema, ENV]}


def integer(minimum: int, maximum: int | None = None) -> Schema:
    s: Schema = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        s["maximum"] = maximum
    return or_env(s)


def positive(maximum: float | None = None) -> Schema:
    s: Schema = {"type": "number", "exclusiveMinimum": 0}
    if maximum is not None:
        s["maximum"] = maximum
    return or_env(s)


def entry(keys: Iterable[str], types: dict[str, Schema], required: Iterable[str] = ()) -> Schema:
    """One `exporters:` item: exactly `keys` (without `type`, which the generator adds), typed from `types`."""
    s: Schema = {"type": "object", "additionalProperties": False,
                 "properties": {k: types.get(k, {}) for k in keys if k != "type"}}
    if required:
        s["required"] = list(required)
    return s
