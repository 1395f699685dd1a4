"""The `http` step kind as the loader and the schema see it: its `http:` and `expect:` keys parsed
once into frozen specs with located problems, and what it declares (yields, sends, its schema).

Templates (`{{ name }}`) are kept as written: the probe renders them per run, never here. Nothing
here imports aiohttp: `validate` never pays for it; `HttpKind.probe()` does, at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from yarl import URL

from probes.common.assertions import OPS, Check, parse_header_checks, parse_json_checks
from probes.common.netspec import NET_KEYS, NetSpec, parse_net
from probes.common.schemas import NET
from probes.common.tls_expect import cert_days_left
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.safety import check_headers
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown
from qos_agent.model import Sends
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import BOOL, DURATION, STR_MAP, Schema, integer, nocase, obj, or_env, ref
from qos_agent.plugins.steps import StepKind, Yields

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
HTTP_KEYS = ("method", "url", "headers", "params", "json", "body", "form", "verify_tls",
             "max_redirects", "max_body", "follow_redirects", *NET_KEYS)
EXPECT_KEYS = ("status", "latency", "json", "body_contains", "headers", "cert_days_left")
DEFAULT_MAX_BODY = 10 * 1024 * 1024
MAX_MAX_BODY = 1024**3  # the body is held in memory: 1GiB is the most `max_body` may allow

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNIT = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


@dataclass(frozen=True, slots=True)
class ExpectSpec:
    status: tuple[int, ...] = ()  # empty: any 2xx or 3xx
    latency_s: float | None = None
    json: tuple[Check, ...] = ()
    body_contains: tuple[str, ...] = ()
    headers: tuple[Check, ...] = ()
    cert_days_left: float | None = None  # https: fail (tls) when the served chain expires sooner


@dataclass(frozen=True, slots=True)
class HttpSpec:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    has_json: bool = False  # `json: null` is a body too
    body: str | None = None
    form: tuple[tuple[str, str], ...] | None = None
    verify_tls: bool = True
    max_redirects: int = 10
    follow_redirects: bool = True
    max_body: int = DEFAULT_MAX_BODY
    expect: ExpectSpec = field(default_factory=ExpectSpec)
    net: NetSpec = field(default_factory=NetSpec)


def parse_size(value: Any) -> int | None:
    """`10MiB`, `512KiB`, `1MB` or a whole number of bytes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str) or not (m := _SIZE.match(value)):
        return None
    size = int(m.group(1)) * _SIZE_UNIT[(m.group(2) or "b").lower()]
    return size if size > 0 else None


def _url(r: Reader, problems: Problems) -> str:
    n = r.get("url")
    url = r.str("url")
    if n is None or not url:
        return url
    if url.startswith("{{") and has_template(url):
        return url
    if not url.startswith(("http://", "https://")):
        problems.add(n.loc, f"'url' must start with http:// or https://, not {shown(url)}",
                     'write url: "https://host/path" or url: "{{ base }}/path"')
        return url
    if not has_template(url):
        try:
            ok = bool(URL(url).host)
        except ValueError:
            ok = False
        if not ok:
            problems.add(n.loc, f"'url' is not a valid URL: {shown(url)}", "write url: https://host/path")
    return url


def _headers(r: Reader, problems: Problems) -> tuple[tuple[str, str], ...]:
    check_headers(r.get("headers"), problems)  # CR/LF in a value would inject a header
    return tuple(r.str_map("headers").items())


def _method(r: Reader, problems: Problems) -> str:
    n = r.get("method")
    method = r.str("method", "GET").upper()
    if n is not None and method not in METHODS:
        problems.add(n.loc, f"unknown HTTP method '{n.value}'", suggest(method, METHODS))
        return "GET"
    return method


def _status(n: Node, problems: Problems) -> tuple[int, ...]:
    items = n.value if n.is_list else [n]
    out = []
    for item in items:
        v = item.value
        if isinstance(v, str) and v.strip().isascii() and v.strip().isdigit() and len(v) < 10:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not 100 <= v <= 599:
            problems.add(item.loc, f"'expect.status' must be a status code 100..599, not {shown(item.value)}",
                         "write status: 200 or status: [200, 204]")
            continue
        out.append(v)
    return tuple(out)


def parse_expect(node: Node | None, problems: Problems) -> ExpectSpec:
    if node is None:
        return ExpectSpec()
    r = Reader(node, problems, EXPECT_KEYS, "expect")
    if not r.ok:
        return ExpectSpec()
    status_node, json_node, headers_node = r.get("status"), r.get("json"), r.get("headers")
    latency = r.duration("latency", 0.0) if r.has("latency") else None
    return ExpectSpec(
        status=_status(status_node, problems) if status_node is not None else (),
        latency_s=latency or None,
        json=parse_json_checks(json_node, problems) if json_node is not None else (),
        body_contains=r.str_list("body_contains"),
        headers=parse_header_checks(headers_node, problems) if headers_node is not None else (),
        cert_days_left=cert_days_left(r),
    )


def parse_http(step: Node, problems: Problems, base: Path | None = None) -> HttpSpec:
    """Parse `step.http` and `step.expect`; returns a usable spec even when problems were found."""
    node = step.get("http")
    expect = parse_expect(step.get("expect"), problems)
    if node is None:
        problems.add(step.loc, "step needs 'http'", "add http: {url: ...}")
        return HttpSpec(url="", expect=expect)
    r = Reader(node, problems, HTTP_KEYS, "http", required=("url",))
    if not r.ok:
        return HttpSpec(url="", expect=expect)
    bodies = [k for k in ("json", "body", "form") if r.has(k)]
    if len(bodies) > 1:
        problems.add(node.key_loc(bodies[1]), f"'http' has both '{bodies[0]}' and '{bodies[1]}'",
                     "send one body: json, body or form")
    json_node = r.get("json")
    form = r.str_map("form") if r.has("form") else None
    size_node = r.get("max_body")
    max_body = DEFAULT_MAX_BODY
    if size_node is not None:
        size = parse_size(size_node.value)
        if size is None or size > MAX_MAX_BODY:
            problems.add(size_node.loc, f"'max_body' is not a size up to 1GiB: {shown(size_node.value)}",
                         "write max_body: 10MiB, 512KiB or a number of bytes")
        else:
            max_body = size
    return HttpSpec(
        url=_url(r, problems),
        method=_method(r, problems),
        headers=_headers(r, problems),
        params=tuple(r.str_map("params").items()),
        json=json_node.plain() if json_node is not None else None,
        has_json=json_node is not None,
        body=r.str("body") if r.has("body") else None,
        form=tuple(form.items()) if form is not None else None,
        verify_tls=r.bool("verify_tls", True),
        max_redirects=r.int("max_redirects", 10, minimum=0, maximum=100),
        follow_redirects=r.bool("follow_redirects", True),
        max_body=max_body,
        expect=expect,
        net=parse_net(r, problems, base or Path.cwd()),
    )


def _conditions(ops: tuple[str, ...]) -> Schema:
    cond = {"type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {op: ({"type": "number"} if op in ("lt", "gt") else {}) for op in ops}}
    return {"anyOf": [cond, {"type": ["string", "number", "boolean"]}]}


class HttpKind(StepKind[HttpSpec]):
    """One HTTP request (following redirects), measured phase by phase (probes/http/probe.py)."""

    kind: ClassVar[str] = "http"
    runtime: ClassVar[str] = "probes.http.probe:HttpProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})
    yields: ClassVar[Yields] = Yields(body="the response body", headers=True, cookies=True)

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> HttpSpec:
        return parse_http(step, problems, load.config_dir)

    @classmethod
    def urls(cls, spec: HttpSpec) -> list[str]:
        """The URL it calls (a template): the journey's origin, for uptime per service."""
        return [spec.url] if spec.url else []

    @classmethod
    def sends(cls, spec: HttpSpec) -> Sends:
        return Sends(headers=spec.headers, urls=tuple(u for u in (spec.url, spec.net.proxy) if u),
                     journey_headers=True)

    @classmethod
    def json_schema(cls) -> dict[str, Schema]:
        status_code = or_env({"type": "integer", "minimum": 100, "maximum": 599})
        types: dict[str, Schema] = {
            "method": nocase(METHODS), "url": {"type": "string", "minLength": 1}, "headers": STR_MAP,
            "params": STR_MAP, "json": {}, "body": {"type": "string"}, "form": STR_MAP,
            "verify_tls": BOOL, "max_redirects": integer(0, 100), "max_body": ref("size"),
            "follow_redirects": BOOL, **NET,
        }
        expect: dict[str, Schema] = {
            "status": {"anyOf": [status_code, {"type": "array", "minItems": 1, "items": status_code}]},
            "latency": DURATION,
            "json": {"type": "object", "additionalProperties": _conditions(OPS)},
            "body_contains": ref("str_list"),
            "headers": {"type": "object",
                        "additionalProperties": _conditions(("exists", "equals", "contains", "matches"))},
            "cert_days_left": or_env({"type": "number", "minimum": 0}),
        }
        return {"http": obj(HTTP_KEYS, types, required=("url",)), "expect": obj(EXPECT_KEYS, expect)}
