"""JSON Schema parts the step kinds share: the networking options and certificate expectations.

Each kind's `json_schema()` builds on these and on qos_agent.plugins.schema_parts; the generated
schema (docs/journeys.schema.json) puts them together.
"""

from __future__ import annotations

from collections.abc import Iterable

from qos_agent.plugins.schema_parts import BOOL, DURATION, ENV, TEXT, Schema, obj

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


def tls_expect(keys: Iterable[str]) -> Schema:
    return obj(keys, {"cert_days_left": DAYS, "tls_version_min": {"enum": ["1.0", "1.1", "1.2", "1.3"]},
                      "hostname_valid": BOOL, "chain_valid": BOOL, "latency": DURATION})


COMMON: dict[str, Schema] = {"host": TEXT, "port": PORT, "server_name": TEXT, "verify": BOOL, "verify_tls": BOOL,
                             "tls": BOOL, **NET}
