"""A minimal working config of every built-in sink type, and the spec the type parses from it.

Tests that must cover every sink (the send policy's table, conformance) take them from here, and
a test fails when a built-in type has no example: a new sink cannot be added without joining them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qos_agent.language.nodes import Problems
from qos_agent.language.yamlload import load_nodes
from qos_agent.plugins import registry
from qos_agent.plugins.context import LoadContext

URL = "http://127.0.0.1:9"  # nothing listens there

EXAMPLES: dict[str, Callable[[str], dict[str, Any]]] = {
    "sqlite": lambda url: {"path": "r.db"},
    "jsonl": lambda url: {"path": "r.jsonl"},
    "junit": lambda url: {"path": "r.xml"},
    "influxdb": lambda url: {"url": url, "database": "qos", "create_database": False, "gzip": False},
    "prometheus_remote_write": lambda url: {"url": url + "/api/v1/write", "bearer_token": "t0ken-rw"},
    "alertmanager": lambda url: {"url": url, "resend": "10s", "auth": {"bearer": "t0ken-am"}},
    "webhook": lambda url: {"url": url + "/hook/S3CR3T-PATH", "format": "json"},
    "otlp": lambda url: {"url": url + "/v1/traces", "headers": {"x-api-key": "t0ken-otlp"}},
}
NETWORK_EXAMPLES = {  # every network sink, and every format of one that has several
    "influxdb v1": ("influxdb", lambda url: EXAMPLES["influxdb"](url)),
    "influxdb v2": ("influxdb", lambda url: {"url": url, "api": "v2", "org": "o", "bucket": "b", "token": "t0ken-v2",
                                             "gzip": False}),
    "prometheus_remote_write": ("prometheus_remote_write", EXAMPLES["prometheus_remote_write"]),
    "alertmanager": ("alertmanager", EXAMPLES["alertmanager"]),
    "webhook json": ("webhook", EXAMPLES["webhook"]),
    "webhook slack": ("webhook", lambda url: {"url": url + "/services/T0/B0/S3CR3T", "format": "slack"}),
    "webhook pagerduty": ("webhook", lambda url: {"url": url + "/v2/enqueue", "format": "pagerduty",
                                                  "routing_key": "R0UT1NG-KEY-0123"}),
    "otlp": ("otlp", EXAMPLES["otlp"]),
}


def _yaml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def parse_exporter(kind: str, config: Callable[[str], dict[str, Any]] | dict[str, Any], state_dir: Path,
                   url: str = URL) -> Any:
    """The spec `kind`'s type parses from the example (no problems allowed)."""
    item = config(url) if callable(config) else config
    problems = Problems()
    node = load_nodes(_yaml({"type": kind, **item}), "journeys.yaml", {}, problems).root
    assert node is not None and not problems, [str(p) for p in problems.sorted()]
    spec = registry.exporter_class(kind).from_config(node, problems, LoadContext(state_dir, state_dir))
    assert spec is not None and not problems, [str(p) for p in problems.sorted()]
    return spec
