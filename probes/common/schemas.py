"""JSON Schema parts of the network step kinds (tls, tcp, dns, websocket, grpc) and the net options.

Each probe's `json_schema()` returns its parts; qos_agent/config/schema.py puts them in the one
generated schema (docs/journeys.schema.json). The keys come from the parsers' own key lists, so a
key added there without a type here shows up as "anything" and a test catches it. `$ref`s point at
the shared `$defs` of the generated file (duration, bool, str_map, str_list, env).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Schema = dict[str, Any]

ENV: Schema = {"$ref": "#/$defs/env"}
DURATION: Schema = {"$ref": "#/$defs/duration"}
BOOL: Schema = {"$ref": "#/$defs/bool"}
STR_MAP: Schema = {"$ref": "#/$defs/str_map"}
STR_LIST: Schema = {"$ref": "#/$defs/str_list"}
TEXT: Schema = {"type": "string", "minLength": 1}
PORT: Schema = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string", "minLength": 1}]}
DAYS: Schema = {"anyOf": [{"type": "number", "minimum": 0}, ENV],
                "description": "fail (error class tls) when the served chain expires in fewer days"}
NET: dict[str, Schema] = {
    "proxy": {"type": "string", "pattern": r"^(https?://|\{\{|\$\{)", "description": "http(s)://host:port"},
    "client_cert": {**TEXT, "description": "PEM file (relative to journeys.yaml) or PEM text from ${VAR}"},
    "client_key": {**TEXT, "description": "PEM file or PEM text from ${VAR}"},
    "ca_file": {**TEXT, "description": "PEM file of CAs trusted besides the system store"},
    "ip_version": {"anyOf": [{"enum": [4, 6, "4", "6"]}, ENV]},
    "resolve": {"type": "object", "description": "host -> IP address, like curl --resolve",
                "additionalProperties": {"type": "string", "pattern": r"^[0-9.]+$|^[0-9a-fA-F:]+$|\{\{|\$\{"}},
}
HOST_PORT = r"^[^:\[\]\s]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$|\{\{|\$\{"
HOST_OPT_PORT = r"^[^:\[\]\s]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$|^[0-9a-fA-F:]+$|\{\{|\$\{"


def obj(keys: Iterable[str], types: dict[str, Schema], required: Iterable[str] = ()) -> Schema:
    """A closed object over the parser's key list; a key without a type here is left open."""
    s: Schema = {"type": "object", "additionalProperties": False, "properties": {k: types.get(k, {}) for k in keys}}
    if required := list(required):
        s["required"] = required
    return s


def tls_expect(keys: Iterable[str]) -> Schema:
    return obj(keys, {"cert_days_left": DAYS, "tls_version_min": {"enum": ["1.0", "1.1", "1.2", "1.3"]},
                      "hostname_valid": BOOL, "chain_valid": BOOL, "latency": DURATION})


COMMON: dict[str, Schema] = {"host": TEXT, "port": PORT, "server_name": TEXT, "verify": BOOL, "verify_tls": BOOL,
                             "tls": BOOL, **NET}


def untyped(parts: dict[str, Schema]) -> list[str]:
    """Keys of a kind's parts that have no type (for the test that every key has one)."""
    out = []
    for key, schema in parts.items():
        for name, sub in schema.get("properties", {}).items():
            if sub == {} and name != "json":
                out.append(f"{key}.{name}")
    return out
