"""Grafana boards without Grafana: read the provisioned JSON, interpolate queries as Grafana does,
and fill a real influxd with every measurement by running real agents against the demo service.

Grafana's InfluxQL interpolation, reproduced here: `$timeFilter` -> `time > now() - 1h`,
`$__interval` -> a fixed interval, and a template variable inside a regex (`/^$journey$/`) becomes
its values regex-escaped and joined as `(a|b)` (one value: the escaped value alone).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qos_agent.delivery.points import result_points
from qos_agent.model import ErrorClass, JourneyResult, Point
from tests.support import results as rb

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCE_FILE = GRAFANA / "provisioning" / "datasources" / "qos-influxdb.yaml"
PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "qos.yaml"
TIME_FILTER = "time > now() - 1h"

# What the test agents see: eu-west's payments fail while /health stays green (a hidden disruption).
DB = "qos"
FAULTY_REGION = "eu-west"
HEALTHY_REGION = "us-east"
BROWSER_REGION = "ap-south"  # an agent with a browser, written as ready-made results (see catalogue)


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def datasource() -> dict[str, Any]:
    doc = yaml.safe_load(DATASOURCE_FILE.read_text())
    [ds] = doc["datasources"]
    return dict(ds)


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


@dataclass(frozen=True)
class Query:
    where: str  # "journeys / panel 3 'Latency p50 / p95' A", for messages
    text: str
    datasource: dict[str, Any]


def panel_queries(board: dict[str, Any]) -> list[Query]:
    out = []
    for p in walk_panels(board["panels"]):
        for t in p.get("targets", []):
            out.append(Query(f"{board['uid']} / panel {p['id']} {p['title']!r} {t['refId']}", t["query"],
                             t.get("datasource", p.get("datasource", {}))))
    return out


def annotation_queries(board: dict[str, Any]) -> list[Query]:
    return [Query(f"{board['uid']} / annotation {a['name']!r}", a["target"]["query"], a["datasource"])
            for a in board["annotations"]["list"] if a.get("datasource", {}).get("type") == "influxdb"]


def _regex_value(values: list[str]) -> str:
    """Grafana's InfluxDB regex formatting of a multi-value / include-all variable."""
    escaped = [re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


Variables = dict[str, "list[str] | str"]  # a list: a query variable's values; a str: a textbox, used as is


def interpolate(query: str, variables: Variables, interval: str = "10s") -> str:
    """The query as Grafana sends it; an unknown `$name` is left alone (and the test then fails)."""
    q = query.replace("$timeFilter", TIME_FILTER).replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        value = variables[name]
        text = value if isinstance(value, str) else _regex_value(value)
        q = re.sub(r"\$" + re.escape(name) + r"\b", lambda _m, t=text: t, q)
    return q


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def select_columns(query: str) -> list[str]:
    """The columns the outermost SELECT returns (after `time`): aliases, else bare field names."""
    body = query.strip()[len("SELECT "):]
    depth, end = 0, None
    for m in re.finditer(r"[()]|\sFROM\s", body):
        tok = m.group()
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        elif depth == 0:
            end = m.start()
            break
    assert end is not None, query
    cols = []
    for item in _split_top(body[:end]):
        alias = re.search(r'\sAS\s+"?(\w+)"?$', item)
        if alias:
            cols.append(alias.group(1))
        else:
            bare = re.fullmatch(r'"?([A-Za-z_][A-Za-z0-9_]*)"?', item)
            assert bare, f"column {item!r} has no alias: give it `AS \"name\"`"
            cols.append(bare.group(1))
    return cols


def series_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    [result] = response["results"]
    assert "error" not in result, result["error"]
    return list(result.get("series", []))


# --------------------------------------------------------------------------- test data

def journeys_yaml(state_dir: Path, region: str, demo_url: str, influx_url: str) -> str:
    """A small journeys.yaml: checkout (tagged) and the uptime check, fast intervals, InfluxDB sink."""
    return f"""
version: 1
agent:
  region: {region}
  name: agent-{region}
  interval: 300ms
  listen: off
  state_dir: {state_dir}
defaults:
  timeout: 2s
  disruption: {{open_after: 2, close_after: 2}}
variables:
  base: {demo_url}
exporters:
  - type: influxdb
    url: {influx_url}
    database: {DB}
    flush_interval: 100ms
journeys:
  - name: checkout
    tags: {{stage: purchase}}
    slo: {{success: 99.5%, latency: 2s}}
    steps:
      - name: login
        http: {{method: POST, url: "{{{{ base }}}}/api/login", json: {{user: demo, password: demo}}}}
        expect: {{status: 200}}
        extract: {{token: {{json: "$.token"}}}}
      - name: cart
        http: {{url: "{{{{ base }}}}/api/cart/demo-cart", headers: {{Authorization: "Bearer {{{{ token }}}}"}}}}
        expect: {{status: 200}}
      - name: pay
        http:
          method: POST
          url: "{{{{ base }}}}/api/pay"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
          json: {{cart_id: demo-cart, card: "4242 4242 4242 4242"}}
        expect: {{status: 200}}
  - name: storefront_tls
    steps:
      - name: where
        http: {{url: "{{{{ base }}}}/api/tls"}}
        extract: {{tls_host: {{json: "$.host"}}, tls_port: {{json: "$.port"}}}}
      - name: cert
        tls: {{host: "{{{{ tls_host }}}}", port: "{{{{ tls_port }}}}", verify: false}}
        expect: {{cert_days_left: 14}}
  - name: uptime
    kind: uptime
    steps:
      - name: health
        http: {{url: "{{{{ base }}}}/health"}}
        expect: {{status: 200}}
"""


def catalogue(now_ms: int) -> list[JourneyResult]:
    """Results of a third region's agent that has a browser: what the demo plus the HTTP probe cannot
    produce on loopback (browser vitals and artifacts, every error class, a redirect status)."""
    region, agent = BROWSER_REGION, f"agent-{BROWSER_REGION}"
    vitals = {"fcp_ms": 420.0, "lcp_ms": 910.0, "cls": 0.02, "dom_content_loaded_ms": 380.0, "load_ms": 1020.0,
              "requests": 14.0, "failed_requests": 0.0, "console_errors": 0.0}
    out: list[JourneyResult] = []
    t = now_ms - 60_000
    for i in range(3):
        out.append(rb.journey("checkout", [rb.passed("login", 90.0), rb.passed("cart", 60.0),
                                           rb.passed("pay", 1300.0 + 50 * i, probe="browser", metrics=vitals)],
                              region=region, agent=agent, start_ms=t, tags=(("stage", "purchase"),)))
        t += 2000
    for cls in ErrorClass:
        probe = "browser" if cls is ErrorClass.BROWSER else "http"
        extra: dict[str, Any] = {}
        if cls is ErrorClass.BROWSER:
            art = f"/var/lib/qos-agent/artifacts/checkout/run-{cls.value}"
            extra = {"artifacts": {"screenshot": f"{art}/pay.png", "trace": f"{art}/pay-trace.zip"},
                     "metrics": {**vitals, "console_errors": 2.0, "failed_requests": 1.0, "cls": 0.31}}
        if cls is ErrorClass.STATUS:
            extra = {"status_code": 404}
        if cls is ErrorClass.REDIRECTS:
            extra = {"status_code": 302}
        out.append(rb.journey("checkout", [rb.passed("login", 95.0), rb.passed("cart", 70.0),
                                           rb.failed("pay", cls, f"{cls.value} failure", probe=probe, **extra)],
                              region=region, agent=agent, start_ms=t, tags=(("stage", "purchase"),)))
        t += 2000
    return out


def catalogue_points(now_ms: int) -> list[Point]:
    return [p for r in catalogue(now_ms) for p in result_points(r)]


async def wait_rows(query: Any, q: str, want: int, limit_s: float = 15.0) -> int:
    """Poll `SELECT count(...)` through `query(q) -> rows` until it reaches `want` (bounded)."""
    deadline = time.monotonic() + limit_s
    n = 0
    while time.monotonic() < deadline:
        rows = await asyncio.to_thread(query, q)
        n = int(rows[0]["count"]) if rows else 0
        if n >= want:
            return n
        await asyncio.sleep(0.1)
    return n
