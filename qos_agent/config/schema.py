"""The JSON Schema of journeys.yaml, for editors (completion, hover, red squiggles) and CI linters.

Generated, not written: the object keys come from the parser's own key lists (`config.*_KEYS`) and
from each registered plug-in, so a key added to the parser shows up here; only the value types are
described in this module (a key without one becomes "anything", and a test catches that).

Built-in plug-ins are described here from their modules' key lists; a third-party plug-in gets its
key accepted with any value. The schema is deliberately
a little looser than the loader (it cannot see duplicate names, variables in scope, environment
variables or JSONPath syntax); `qos-agent validate` stays the authority.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from qos_agent.config import loader as cfg
from qos_agent.model import RESERVED_TAGS, JourneyKind
from qos_agent.plugins import registry

Schema = dict[str, Any]

ENV = {"$ref": "#/$defs/env"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def _or_env(schema: Schema) -> Schema:
    """Any scalar may be written as ${VAR} (substituted at load), so typed values accept that too."""
    return {"anyOf": [schema, ENV]}


def _int(minimum: int, maximum: int | None = None) -> Schema:
    s: Schema = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        s["maximum"] = maximum
    return _or_env(s)


def _enum(values: Iterable[str]) -> Schema:
    return {"enum": list(values)}


def _alternatives(words: Iterable[str]) -> str:
    """A case-insensitive regex alternation spelled for ECMA-262 too (which has no `(?i)`)."""
    return "|".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in w) for w in words)


def _nocase(words: Iterable[str]) -> Schema:
    """Case-insensitive choice (the loader upper-cases, e.g. HTTP methods)."""
    return {"type": "string", "pattern": "^(" + _alternatives(words) + ")$"}


SIZE_UNITS = ("B", "KB", "KiB", "MB", "MiB", "GB", "GiB")  # probes/http_config.py's sizes


DEFS: dict[str, Schema] = {
    "env": {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
            "description": "${VAR} or ${VAR:-default}, read from the environment at load"},
    "text": {"type": ["string", "number"], "minLength": 1},
    "name": {"type": "string", "pattern": cfg.NAME.pattern,
             "description": "letters, digits, '.', '_' and '-' (it becomes a tag value)"},
    "duration": {"anyOf": [{"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"}, ENV],
                 "description": "a number and a unit: 250ms, 10s, 5m, 1h"},
    "ratio": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
                        {"type": "string", "pattern": r"^\s*(100(\.0+)?|\d{1,2}(\.\d+)?)\s*%\s*$"},
                        {"type": "string", "pattern": r"^\s*(0(\.\d+)?|1(\.0+)?)\s*$"}, ENV],
              "description": "a percentage such as 99.5% (or 0..1)"},
    "bool": {"anyOf": [{"type": "boolean"}, {"enum": ["true", "false", "True", "False"]}, ENV]},
    "str_map": {"type": "object", "additionalProperties": {"type": ["string", "number"]},
                "description": "names to strings"},
    "str_list": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "size": {"anyOf": [{"type": "integer", "minimum": 1},
                       {"type": "string", "pattern": r"^\s*\d+\s*(" + _alternatives(SIZE_UNITS) + r")?\s*$"}, ENV],
             "description": "bytes, or 512KiB, 10MiB, 1GB"},
}

DISRUPTION: dict[str, Schema] = {
    "open_after": _int(1, 100), "close_after": _int(1, 100), "window": _ref("duration"),
    "min_failures": _int(1, 10_000), "min_runs": _int(1, 10_000),
}

AGENT: dict[str, Schema] = {
    "region": _ref("text"),
    "name": _ref("text"),
    "interval": _ref("duration"),
    "concurrency": _int(1, 10_000),
    "browser_concurrency": _int(1, 64),
    "state_dir": {"type": "string", "minLength": 1,
                  "description": "spool, embedded store, artifacts; relative to this file"},
    "listen": {"anyOf": [{"type": "string", "pattern": r"^[\w.:\[\]-]*:\d{1,5}$"}, {"enum": [False, "", "off"]}, ENV],
               "description": "HOST:PORT of /healthz and /metrics, or off"},
    "shard": {"anyOf": [{"type": "string", "pattern": r"^\s*\d+\s*/\s*\d+\s*$"}, ENV],
              "description": "INDEX/COUNT, e.g. 2/3"},
    "sink_stale_after": {**_ref("duration"),
                         "description": "/healthz degraded: a sink with points waiting delivered nothing this long"},
    "max_loop_lag": _ref("duration"),
    "loop": {**_enum(("auto", "asyncio", "uvloop")),
             "description": "the event loop: auto = uvloop where installed, else asyncio"},
}

DEFAULTS: dict[str, Schema] = {
    "timeout": _ref("duration"), "retries": _int(0, 10), "headers": _ref("str_map"),
    "journey_timeout": _ref("duration"), "disruption": _ref("disruption"),
}

JOURNEY: dict[str, Schema] = {
    "name": _ref("name"),
    "description": {"type": "string"},
    "kind": _enum(k.value for k in JourneyKind),
    "interval": _ref("duration"),
    "regions": _ref("str_list"),
    "tags": {"type": "object", "additionalProperties": {"type": ["string", "number"]},
             "propertyNames": {"not": _enum(sorted(RESERVED_TAGS))},
             "description": "added to every point; names the agent sets itself are refused"},
    "slo": {"type": "object", "additionalProperties": False,
            "properties": {"success": _ref("ratio"), "latency": _ref("duration")}},
    "variables": _ref("str_map"),
    "steps": {"type": "array", "minItems": 1, "items": _ref("step")},
    "retries": _int(0, 10),
    "timeout": _ref("duration"),
    "headers": _ref("str_map"),
    "disruption": _ref("disruption"),
    "alert": {"type": "object", "additionalProperties": False,
              "properties": {"severity": {"type": "string", "pattern": cfg.NAME.pattern},
                             "runbook": {"type": "string", "pattern": "^(https?://|\\$\\{)"}},
              "description": "what alert sinks say about this journey's disruptions"},
    "uptime": {"type": "string", "minLength": 1,
               "description": "the kind: uptime journey this journey is compared with (default: same origin)"},
    "owner": {"type": ["string", "number"], "minLength": 1, "maxLength": 256,
              "description": "the team that owns it (a tag on every point; the scorecard names it)"},
    "customer_reason": {"type": ["string", "number"], "minLength": 1, "maxLength": 256,
                        "description": "the customer reason it stands for, e.g. 'pay for an order' "
                                       "(a tag; the scorecard groups journeys by it)"},
    "weight": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                         {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"}, ENV],
               "description": "its share of customers or traffic, a positive number: disrupted minutes are "
                             "multiplied by it into customer-minutes (a tag)"},
}

STEP: dict[str, Schema] = {
    "name": _ref("name"),
    "timeout": _ref("duration"),
    "always_run": _ref("bool"),
    "degraded_latency": _ref("duration"),
    "extract": {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": False,
        "oneOf": [{"required": [source]} for source in cfg.EXTRACT_SOURCES],
        "properties": {**{source: {"type": "string"} for source in cfg.EXTRACT_SOURCES},
                       "secret": _ref("bool")}}},
}

TOP: dict[str, Schema] = {
    "version": {"const": 1},
    "agent": _ref("agent"),
    "defaults": _ref("defaults"),
    "variables": _ref("str_map"),
    "exporters": {"type": "array", "minItems": 1, "items": _ref("exporter")},
    "journeys": {"type": "array", "minItems": 1, "items": _ref("journey")},
    "secrets": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "description": "environment variables whose values are secrets (masked everywhere)"},
}


def _object(keys: Iterable[str], types: dict[str, Schema], required: Iterable[str] = (), **extra: Any) -> Schema:
    """An object whose keys are exactly `keys` (the parser's list); values typed from `types`."""
    return {"type": "object", "additionalProperties": False,
            "properties": {k: types.get(k, {}) for k in keys}, **({"required": list(required)} if required else {}),
            **extra}


# -- built-in plug-ins: their parts, from their own modules' key lists ----------------


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _conditions(ops: Iterable[str]) -> Schema:
    ops = list(ops)
    cond = {"type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {op: ({"type": "number"} if op in ("lt", "gt") else {}) for op in ops}}
    return {"anyOf": [cond, {"type": ["string", "number", "boolean"]}]}


def _net_types() -> dict[str, Schema]:
    """proxy, client_cert, ... (probes/netopts.py), typed in probes/schemas.py."""
    m = _module("probes.schemas")
    return dict(m.NET) if m is not None else {}


def _http_parts() -> dict[str, Schema] | None:
    m, a = _module("probes.http_config"), _module("probes.assertions")
    if m is None or a is None:
        return None
    status_code = _or_env({"type": "integer", "minimum": 100, "maximum": 599})
    types: dict[str, Schema] = {
        "method": _nocase(m.METHODS), "url": {"type": "string", "minLength": 1}, "headers": _ref("str_map"),
        "params": _ref("str_map"), "json": {}, "body": {"type": "string"}, "form": _ref("str_map"),
        "verify_tls": _ref("bool"), "max_redirects": _int(0, 100), "max_body": _ref("size"),
        "follow_redirects": _ref("bool"), **_net_types(),
    }
    expect: dict[str, Schema] = {
        "status": {"anyOf": [status_code, {"type": "array", "minItems": 1, "items": status_code}]},
        "latency": _ref("duration"),
        "json": {"type": "object", "additionalProperties": _conditions(a.OPS)},
        "body_contains": _ref("str_list"),
        "headers": {"type": "object",
                    "additionalProperties": _conditions(("exists", "equals", "contains", "matches"))},
        "cert_days_left": _or_env({"type": "number", "minimum": 0}),
    }
    return {"http": _object(m.HTTP_KEYS, types, required=("url",)), "expect": _object(m.EXPECT_KEYS, expect)}


def _browser_parts() -> dict[str, Schema] | None:
    m = _module("probes.browser_config")
    keys = getattr(m, "_KEYS", None)
    if m is None or not isinstance(keys, dict):
        return None
    types: dict[str, Schema] = {"timeout": _ref("duration"), "state": _enum(m.STATES),
                                "wait_until": _enum(m.WAIT_UNTIL), "full_page": _ref("bool"),
                                "value": {"type": ["string", "number"]}}
    actions = []
    for verb, (verb_keys, required, short) in keys.items():
        arg = _object(verb_keys, {k: types.get(k, {"type": "string"}) for k in verb_keys}, required=required)
        if short is not None:
            arg = {"anyOf": [{"type": ["string", "number"], "minLength": 1}, arg]}
        actions.append({"type": "object", "additionalProperties": False, "required": [verb],
                        "properties": {verb: arg}})
    action_list = {"type": "array", "minItems": 1, "items": {"oneOf": actions}}
    net = _module("probes.browser_net")
    net_keys = tuple(getattr(net, "BROWSER_NET_KEYS", ()))
    net_types = {k: v for k, v in {**_net_types(), "verify_tls": _ref("bool")}.items() if k in net_keys}
    long_form = _object(("actions", "fail_on_http_errors", "trace", *net_keys),
                        {"actions": action_list, "fail_on_http_errors": _ref("bool"),
                         "trace": {"enum": [*getattr(m, "TRACE_MODES", ("on-retry",)), False]}, **net_types},
                        required=("actions",))
    return {"browser": {"anyOf": [action_list, long_form]},
            "mask": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                     "description": "selectors painted over in the step's screenshots"}}


BUILTIN_PROBES: dict[str, Callable[[], dict[str, Schema] | None]] = {"http": _http_parts,
                                                                      "browser": _browser_parts}


def _influx_keys() -> tuple[frozenset[str], ...] | None:
    m = _module("exporters.influxdb")
    return None if m is None else (m.COMMON_KEYS, m.V1_KEYS, m.V2_KEYS)


def _exporter_types() -> dict[str, Schema]:
    return {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$"},
        "url": {"type": "string", "minLength": 1}, "api": _enum(("v1", "v2")), "gzip": _ref("bool"),
        "timeout": _ref("duration"), "batch_size": _int(1, 1_000_000), "flush_interval": _ref("duration"),
        "max_spool_mb": _or_env({"type": "number", "exclusiveMinimum": 0}), "verify_tls": _ref("bool"),
        "database": _ref("text"), "retention_policy": _ref("text"), "username": _ref("text"),
        "password": _ref("text"), "create_database": _ref("bool"), "org": _ref("text"), "bucket": _ref("text"),
        "token": _ref("text"), "path": {"type": "string", "minLength": 1}, "retention": _ref("duration"),
        "max_mb": _or_env({"type": "number", "exclusiveMinimum": 0}), "keep": _int(0, 1000),
        "max_cases": _int(1),
        "headers": {"type": "object", "additionalProperties": _ref("text")},
        "external_labels": {"type": "object", "additionalProperties": _ref("text")},
        "bearer_token": _ref("text"),
        "basic_auth": _object(("username", "password"), {"username": _ref("text"), "password": _ref("text")},
                              required=("username", "password")),
    }


# The keys of built-in exporters whose modules keep them inline in from_config (see the module docstring).
BUILTIN_EXPORTER_KEYS: dict[str, tuple[str, ...]] = {
    "sqlite": ("path", "retention"),
    "jsonl": ("path", "max_mb", "keep"),
    "junit": ("path", "max_cases"),
}

# The alert sinks' keys come from their modules (KEYS); their URLs must name a scheme.
_ALERT_URL: Schema = {"type": "string", "pattern": r"^(https?://|\$\{)"}
ALERT_TYPES: dict[str, Schema] = {
    "url": _ALERT_URL, "urls": {"type": "array", "minItems": 1, "items": _ALERT_URL},
    "resend": _ref("duration"), "labels": _ref("str_map"), "headers": _ref("str_map"),
    "auth": {"type": "object", "additionalProperties": False, "minProperties": 1,
             "properties": {"bearer": _ref("text"), "username": _ref("text"), "password": _ref("text")}},
    "format": _enum(("json", "slack", "pagerduty")), "routing_key": _ref("text"),
}


def _alert_keys(kind: str) -> tuple[str, ...] | None:
    m = _module(f"exporters.{kind}") if kind in ("alertmanager", "webhook") else None
    return None if m is None else tuple(k for k in m.KEYS if k != "type")


def _step_keys(kind: str) -> frozenset[str]:
    try:
        return registry.probe_class(kind).step_keys
    except Exception:  # a plug-in that fails to import still gets its key accepted
        return frozenset()


def _plugin_parts(kind: str) -> dict[str, Schema] | None:
    try:
        return registry.probe_class(kind).json_schema()
    except Exception:  # a plug-in that fails to import still gets its key accepted
        return None


def probe_parts(kind: str) -> dict[str, Schema]:
    """`{step key: schema}` for one step kind: its own key, plus the step keys it reads (e.g. expect)."""
    parts = (BUILTIN_PROBES[kind]() if kind in BUILTIN_PROBES else None) or _plugin_parts(kind) or {kind: {}}
    for key in _step_keys(kind):
        parts.setdefault(key, {})
    return parts


def exporter_schema(kind: str) -> Schema:
    types = _exporter_types()
    keys: Iterable[str] | None = None
    if kind == "influxdb" and (influx := _influx_keys()) is not None:
        keys = sorted(frozenset().union(*influx) - {"type"})
    elif kind == "prometheus_remote_write" and (rw := _module("exporters.prometheus_remote_write")) is not None:
        keys = sorted(rw.KEYS - {"type"})
    elif kind in BUILTIN_EXPORTER_KEYS:
        keys = BUILTIN_EXPORTER_KEYS[kind]
    elif (alert := _alert_keys(kind)) is not None:
        keys, types = alert, {**types, **ALERT_TYPES}
    if keys is None:
        return {"type": "object", "required": ["type"], "properties": {"type": {"const": kind}}}
    s = _object(("type", *keys), {**types, "type": {"const": kind}}, required=("type",))
    if kind in ("influxdb", "prometheus_remote_write"):
        s["required"] = ["type", "url"]
    return s


def step_schema() -> Schema:
    """One variant per step kind: the common step keys, the kind's key (required) and its step keys."""
    variants = []
    for kind in registry.probe_kinds():
        parts = probe_parts(kind)
        props = {**{k: STEP.get(k, {}) for k in cfg.STEP_KEYS}, **parts}
        variants.append({"type": "object", "title": f"{kind} step", "additionalProperties": False,
                         "required": ["name", kind], "properties": props})
    return {"type": "object", "oneOf": variants}


def build_schema() -> Schema:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "qos-agent journeys.yaml",
        "description": "Generated by `qos-agent schema`; do not edit (docs/journeys.md describes the language).",
        "$ref": "#/$defs/file",
        "$defs": {
            **DEFS,
            "file": _object(cfg.TOP_KEYS, TOP, required=("version", "journeys")),
            "agent": _object(cfg.AGENT_KEYS, AGENT),
            "defaults": _object(cfg.DEFAULT_KEYS, DEFAULTS),
            "disruption": _object(cfg.DISRUPTION_KEYS, DISRUPTION),
            "journey": _object(cfg.JOURNEY_KEYS, JOURNEY, required=("name", "steps")),
            "step": step_schema(),
            "exporter": {"type": "object", "required": ["type"],
                         "oneOf": [exporter_schema(t) for t in registry.exporter_types()]},
        },
    }


def untyped_keys() -> list[str]:
    """Core keys the parser knows but this module gives no type: each should get one."""
    tables = ((cfg.TOP_KEYS, TOP, "file"), (cfg.AGENT_KEYS, AGENT, "agent"), (cfg.DEFAULT_KEYS, DEFAULTS, "defaults"),
              (cfg.DISRUPTION_KEYS, DISRUPTION, "disruption"), (cfg.JOURNEY_KEYS, JOURNEY, "journey"),
              (cfg.STEP_KEYS, STEP, "step"))
    return [f"{where}.{k}" for keys, types, where in tables for k in keys if k not in types]


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"
