"""Words for a sink type's JSON Schema (`SinkType.json_schema`), so each describes itself in a few lines.

The shared words come from qos_agent/plugins/schema_parts.py, as the step kinds' do; these are
the sinks' own. `entry` closes an object over the parser's own key list: a key read by
`from_config` without a type here becomes "anything", and tests/test_schema.py catches it.
"""

from __future__ import annotations

from collections.abc import Iterable

from qos_agent.plugins.schema_parts import BOOL, DURATION, ENV, STR_MAP, Schema, integer, obj, or_env, ref

__all__ = ["BOOL", "DURATION", "ENV", "HTTP_URL", "PATH", "SPOOL_NAME", "STR_MAP", "TEXT", "TEXT_MAP", "Schema",
           "entry", "integer", "or_env", "positive"]

TEXT: Schema = ref("text")  # a scalar written as text or a number (labels, tokens)
TEXT_MAP: Schema = {"type": "object", "additionalProperties": TEXT}
SPOOL_NAME: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$",
                      "description": "the durable store's file name (state_dir/spool/NAME.db)"}
HTTP_URL: Schema = {"type": "string", "pattern": r"^(https?://|\$\{)"}
PATH: Schema = {"type": "string", "minLength": 1}


def positive(maximum: float | None = None) -> Schema:
    s: Schema = {"type": "number", "exclusiveMinimum": 0}
    if maximum is not None:
        s["maximum"] = maximum
    return or_env(s)


def entry(keys: Iterable[str], types: dict[str, Schema], required: Iterable[str] = ()) -> Schema:
    """One `exporters:` item: exactly `keys` (without `type`, which the generator adds), typed from `types`."""
    return obj((k for k in keys if k != "type"), types, required)
