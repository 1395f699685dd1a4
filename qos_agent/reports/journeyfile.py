"""What the scorecard needs from journeys.yaml, read leniently: objectives, intervals, InfluxDB settings.

`qos-agent report` runs where the agent's secrets are not set (a laptop, a CI job), so the file is
not validated and a `${VAR}` that is not set only hides the value that uses it (its objective is then
unknown, never invented). The InfluxDB source is the exception: its url and credentials must be
there, and a missing variable is a located error naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qos_agent.config.metadata import CUSTOMER_REASON, OWNER, WEIGHT, format_weight
from qos_agent.language.nodes import parse_duration, parse_ratio
from qos_agent.language.yamlload import ENV_REF
from qos_agent.reports.errors import ReportError
from qos_agent.reports.storepath import compose, get, text

DEFAULT_INTERVAL_S = 60.0  # AgentConfig's default
DEFAULT_SLO_SUCCESS = 0.99  # Slo's default: a journey without `slo:` still promises 99 %


@dataclass(frozen=True, slots=True)
class JourneyInfo:
    name: str
    kind: str = "journey"
    interval_s: float | None = DEFAULT_INTERVAL_S
    slo_success: float | None = DEFAULT_SLO_SUCCESS
    slo_latency_ms: float | None = None
    owner: str = ""
    customer_reason: str = ""
    weight: str = ""


@dataclass(frozen=True, slots=True)
class InfluxSettings:
    url: str
    api: str = "v1"
    database: str = ""
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    bucket: str = ""
    token: str = ""
    verify_tls: bool = True
    timeout_s: float = 10.0


def _lenient(node: Any) -> str | None:
    """A scalar's text with ${VAR} filled in; None when a variable it needs is not set."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    missing = False

    def sub(m: Any) -> str:
        nonlocal missing
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            missing = True
            return ""
        return str(default)

    value = ENV_REF.sub(sub, str(node.value))
    return None if missing else value


def _items(node: Any) -> list[Any]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _journey(node: Any, interval_s: float | None) -> JourneyInfo | None:
    name = _lenient(get(node, "name"))
    if not name:
        return None
    own_interval = _lenient(get(node, "interval"))
    if own_interval is not None:
        interval_s = parse_duration(own_interval)
    elif get(node, "interval") is not None:
        interval_s = None  # set from a variable this machine does not have: unknown
    slo = get(node, "slo")
    success: float | None = DEFAULT_SLO_SUCCESS
    latency_ms: float | None = None
    if get(slo, "success") is not None:
        raw = _lenient(get(slo, "success"))
        success = parse_ratio(raw) if raw is not None else None
    if get(slo, "latency") is not None:
        raw = _lenient(get(slo, "latency"))
        seconds = parse_duration(raw) if raw is not None else None
        latency_ms = seconds * 1000 if seconds is not None else None
    weight = _lenient(get(node, WEIGHT)) or ""
    try:
        weight = format_weight(float(weight)) if weight and float(weight) > 0 else ""
    except ValueError:
        weight = ""
    return JourneyInfo(name=name, kind=_lenient(get(node, "kind")) or "journey", interval_s=interval_s,
                       slo_success=success, slo_latency_ms=latency_ms, owner=_lenient(get(node, OWNER)) or "",
                       customer_reason=_lenient(get(node, CUSTOMER_REASON)) or "", weight=weight)


def read_journeys(journeys_file: Path) -> dict[str, JourneyInfo]:
    """Every journey of the file by name; {} when there is no file (the report then reads only data)."""
    if not journeys_file.is_file():
        return {}
    root = compose(journeys_file, "fix the file, or leave out -f to read the data alone")
    raw_interval = _lenient(get(get(root, "agent"), "interval"))
    interval = parse_duration(raw_interval) if raw_interval is not None else DEFAULT_INTERVAL_S
    found = (_journey(item, interval) for item in _items(get(root, "journeys")))
    return {j.name: j for j in found if j is not None}


def trace_url(journeys_file: Path) -> str:
    """`agent.trace_url` (a link template with {trace_id}), or "" (no file, not set, a variable not set)."""
    if not journeys_file.is_file():
        return ""
    root = compose(journeys_file, "fix the file, or leave out -f to read the data alone")
    template = _lenient(get(get(root, "agent"), "trace_url")) or ""
    return template if "{trace_id}" in template and template.startswith(("http://", "https://")) else ""


def influx_settings(journeys_file: Path, url_override: str | None) -> InfluxSettings:
    """The file's first influxdb exporter (its url replaced by --url when given)."""
    if not journeys_file.is_file():
        raise ReportError(f"--source influxdb reads the influxdb exporter of {journeys_file}, which does not "
                          "exist (give it with -f)")
    file = str(journeys_file)
    root = compose(journeys_file, "fix the file to read InfluxDB")
    for item in _items(get(root, "exporters")):
        if text(get(item, "type"), file) != "influxdb":
            continue

        def value(key: str, default: str = "", node: Any = item) -> str:
            return text(get(node, key), file, "the influxdb exporter needs it", "to read InfluxDB") or default

        url = (url_override or value("url")).rstrip("/")
        if not url:
            raise ReportError(f"{file}: the influxdb exporter has no url (add url: or give --url)")
        timeout = parse_duration(value("timeout", "10s")) or 10.0
        return InfluxSettings(
            url=url, api=value("api", "v1"), database=value("database"), retention_policy=value("retention_policy"),
            username=value("username"), password=value("password"), bucket=value("bucket"), token=value("token"),
            verify_tls=value("verify_tls", "true").lower() != "false", timeout_s=timeout)
    raise ReportError(f"{file} has no influxdb exporter to read (add one, or use --source sqlite or prometheus)")
