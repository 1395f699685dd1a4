"""The JSON Schema of journeys.yaml, for editors (completion, hover, red squiggles) and CI linters.

Generated, not written: the object keys come from the parser's own key lists (`config.*_KEYS`) and
from each registered plug-in, so a key added to the parser shows up here; only the value types are
described in this module (a key without one becomes "anything", and a test catches that).

Sink types describe their own entries (`SinkType.json_schema`); a third-party plug-in without a
description gets its key accepted with any value. The schema is deliberately
a little looser than the loader (it cannot see duplicate names, variables in scope, environment
variables or JSONPath syntax); `qos-agent validate` stays the authority.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from qos_agent.config import keys as cfg
from qos_agent.model import JourneyKind
from qos_agent.plugins import registry
from qos_agent.plugins.schema_parts import ENV, Schema, alternatives, enum, integer, obj, ref
from qos_agent.plugins.steps import Yields
from qos_agent.sinks.labels import reserved_pattern

SIZE_UNITS = ("B", "KB", "KiB", "MB", "MiB", "GB", "GiB")  # probes/http/config.py's sizes


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
                       {"type": "string", "pattern": r"^\s*\d+\s*(" + alternatives(SIZE_UNITS) + r")?\s*$"}, ENV],
             "description": "bytes, or 512KiB, 10MiB, 1GB"},
}

DISRUPTION: dict[str, Schema] = {
    "open_after": integer(1, 100), "close_after": integer(1, 100), "window": ref("duration"),
    "min_failures": integer(1, 10_000), "min_runs": integer(1, 10_000),
}

AGENT: dict[str, Schema] = {
    "region": ref("text"),
    "name": ref("text"),
    "interval": ref("duration"),
    "concurrency": integer(1, 10_000),
    "browser_concurrency": integer(1, 64),
    "state_dir": {"type": "string", "minLength": 1,
                  "description": "spool, embedded store, artifacts; relative to this file"},
    "listen": {"anyOf": [{"type": "string", "pattern": r"^[\w.:\[\]-]*:\d{1,5}$"}, {"enum": [False, "", "off"]}, ENV],
               "description": "HOST:PORT of /healthz and /metrics, or off"},
    "shard": {"anyOf": [{"type": "string", "pattern": r"^\s*\d+\s*/\s*\d+\s*$"}, ENV],
              "description": "INDEX/COUNT, e.g. 2/3"},
    "sink_stale_after": {**ref("duration"),
                         "description": "/healthz degraded: a sink with points waiting delivered nothing this long"},
    "max_loop_lag": ref("duration"),
    "loop": {**enum(("auto", "asyncio", "uvloop")),
             "description": "the event loop: auto = uvloop where installed, else asyncio"},
    "traceparent": {**ref("bool"), "description": "send W3C traceparent on every request (default true)"},
    "trace_url": {"type": "string", "pattern": "^(https?://.*\\{trace_id\\}|\\$\\{)",
                  "description": "a link to each run's trace: an http(s) URL with {trace_id}"},
}

DEFAULTS: dict[str, Schema] = {
    "timeout": ref("duration"), "retries": integer(0, 10), "headers": ref("str_map"),
    "journey_timeout": ref("duration"), "disruption": ref("disruption"),
}

JOURNEY: dict[str, Schema] = {
    "name": ref("name"),
    "description": {"type": "string"},
    "kind": enum(k.value for k in JourneyKind),
    "interval": ref("duration"),
    "regions": ref("str_list"),
    "tags": {"type": "object", "additionalProperties": {"type": ["string", "number"]},
             "propertyNames": {"not": {"pattern": reserved_pattern()}},
             "description": "added to every point (and as labels); names the agent, Prometheus or Alertmanager "
                            "set themselves are refused"},
    "slo": {"type": "object", "additionalProperties": False,
            "properties": {"success": ref("ratio"), "latency": ref("duration")}},
    "variables": ref("str_map"),
    "steps": {"type": "array", "minItems": 1, "items": ref("step")},
    "retries": integer(0, 10),
    "timeout": ref("duration"),
    "headers": ref("str_map"),
    "disruption": ref("disruption"),
    "alert": {"type": "object", "additionalProperties": False,
              "properties": {"severity": {"type": "string", "pattern": cfg.NAME.pattern},
                             "runbook": {"type": "string", "pattern": "^(https?://|\\$\\{)"}},
              "description": "what alert sinks say about this journey's disruptions"},
    "traceparent": {**ref("bool"), "description": "send W3C traceparent (default: agent.traceparent)"},
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
    "name": ref("name"),
    "timeout": ref("duration"),
    "always_run": ref("bool"),
    "degraded_latency": ref("duration"),
    "extract": {"description": "values for later steps, from what the step's kind yields"},
}


def extract_schema(yields: Yields) -> Schema:
    """`extract:` of one kind: only the sources its yield allows (`field` names its fields)."""
    if not yields.sources:
        return {"not": {}, "description": "this step kind yields nothing to extract"}
    props: dict[str, Schema] = {s: {"type": "string"} for s in yields.sources}
    if "field" in props:
        props["field"] = {"enum": list(yields.fields)}
    return {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": False,
        "oneOf": [{"required": [source]} for source in yields.sources],
        "properties": {**props, "secret": ref("bool")}}}

TOP: dict[str, Schema] = {
    "version": {"const": 1},
    "agent": ref("agent"),
    "defaults": ref("defaults"),
    "variables": ref("str_map"),
    "exporters": {"type": "array", "minItems": 1, "items": ref("exporter")},
    "journeys": {"type": "array", "minItems": 1, "items": ref("journey")},
    "secrets": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "description": "environment variables whose values are secrets (masked everywhere)"},
}


# -- built-in plug-ins: their parts, from their own modules' key lists ----------------


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None




def probe_parts(kind: str) -> dict[str, Schema]:
    """`{step key: schema}` for one step kind: its own key, the step keys it reads (e.g. expect), and
    `extract` as its yield allows. A plug-in that fails to import still gets its key accepted."""
    try:
        cls = registry.step_kind(kind)
        parts = dict(cls.json_schema() or {kind: {}})
        step_keys, yields = cls.step_keys, cls.yields
    except Exception:
        parts, step_keys, yields = {kind: {}}, frozenset(), Yields()
    for key in step_keys:
        parts.setdefault(key, {})
    parts["extract"] = extract_schema(yields)
    return parts


def exporter_schema(kind: str) -> Schema:
    """One variant of an `exporters:` item: the sink type's own description (`SinkType.json_schema`)."""
    try:
        described = registry.exporter_class(kind).json_schema()
    except Exception:  # a plug-in that fails to import still gets its type accepted
        described = None
    if described is None:
        return {"type": "object", "required": ["type"], "properties": {"type": {"const": kind}}}
    return {**described, "properties": {"type": {"const": kind}, **described.get("properties", {})},
            "required": ["type", *described.get("required", [])]}


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
            "file": obj(cfg.TOP_KEYS, TOP, required=("version", "journeys")),
            "agent": obj(cfg.AGENT_KEYS, AGENT),
            "defaults": obj(cfg.DEFAULT_KEYS, DEFAULTS),
            "disruption": obj(cfg.DISRUPTION_KEYS, DISRUPTION),
            "journey": obj(cfg.JOURNEY_KEYS, JOURNEY, required=("name", "steps")),
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
