"""The `websocket` step kind as the loader and the schema see it: upgrade, send messages, wait for
the expected one (aiohttp's client, imported only by probes/websocket/probe.py).

    - name: live
      websocket:
        url: "wss://shop.example/ws"
        headers: {Authorization: "Bearer {{ token }}"}
        send: ['{"subscribe": "orders"}']
        expect_message: {json: {"$.type": {equals: ack}}}   # or {contains: ack}

The upgrade goes through the journey's cookie jar, both ways (a login's cookie rides on the upgrade;
a cookie set on the 101 is kept). Phases: dns_ms, connect_ms, tls_ms (from http_trace), upgrade_ms
(request sent to 101), first_message_ms (last send to the first message received). A refused upgrade
is `status` (HTTP code), a close with an error code before the expected message is `status` too
(code and reason), a message that never matches is `assertion` or `timeout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from probes.common.assertions import Check, parse_json_checks
from probes.common.netspec import NET_KEYS, NetSpec, parse_net
from probes.common.schemas import NET, tls_expect
from probes.common.tls_expect import TlsExpect, parse_tls_expect
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.safety import check_headers
from qos_agent.language.text import shown as quoted
from qos_agent.model import Sends
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import BOOL, STR_LIST, STR_MAP, TEXT, obj
from qos_agent.plugins.steps import StepKind, Yields

WS_KEYS = ("url", "headers", "send", "expect_message", "verify_tls", "max_messages", *NET_KEYS)
MESSAGE_KEYS = ("contains", "json")
EXPECT_KEYS = ("cert_days_left", "latency")


@dataclass(frozen=True, slots=True)
class WsSpec:
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    send: tuple[str, ...] = ()
    contains: str = ""
    json: tuple[Check, ...] = ()
    verify_tls: bool = True
    max_messages: int = 100
    net: NetSpec = field(default_factory=NetSpec)
    expect: TlsExpect = field(default_factory=TlsExpect)

    @property
    def waits(self) -> bool:
        return bool(self.contains or self.json)


def parse_ws(step: Node, problems: Problems, load: LoadContext) -> WsSpec:
    expect = parse_tls_expect(step.get("expect"), problems, EXPECT_KEYS)
    r = Reader.section(step.get("websocket"), problems, WS_KEYS, "websocket", required=("url",))
    if r is None:
        return WsSpec(url="", expect=expect)
    check_headers(r.get("headers"), problems)  # CR/LF in a value would inject a header
    url = r.str("url", "")
    un = r.get("url")
    if url and un is not None and not url.startswith("{{") and not url.startswith(
            ("ws://", "wss://", "http://", "https://")):
        problems.add(un.loc, f"'url' must start with ws:// or wss://, not {quoted(url[:40])}", 'write url: "wss://host/ws"')
    contains = ""
    checks: tuple[Check, ...] = ()
    mn = r.get("expect_message")
    if mn is not None:
        m = Reader(mn, problems, MESSAGE_KEYS, "expect_message")
        contains = m.str("contains", "")
        jn = m.get("json")
        checks = parse_json_checks(jn, problems) if jn is not None else ()
        if m.ok and not (contains or jn is not None):
            problems.add(mn.loc, "'expect_message' has no condition", "write expect_message: {contains: ok}")
    return WsSpec(url=url, headers=tuple(r.str_map("headers").items()), send=r.str_list("send"), contains=contains,
                  json=checks, verify_tls=r.bool("verify_tls", True),
                  max_messages=r.int("max_messages", 100, minimum=1, maximum=100_000),
                  net=parse_net(r, problems, load.config_dir), expect=expect)


class WebSocketKind(StepKind[WsSpec]):
    kind: ClassVar[str] = "websocket"
    runtime: ClassVar[str] = "probes.websocket.probe:WebSocketProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})
    yields: ClassVar[Yields] = Yields(body="the matched message", cookies=True)

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> WsSpec:
        return parse_ws(step, problems, load)

    @classmethod
    def urls(cls, spec: WsSpec) -> list[str]:
        return [spec.url] if spec.url else []

    @classmethod
    def sends(cls, spec: WsSpec) -> Sends:
        return Sends(headers=spec.headers, urls=tuple(u for u in (spec.url, spec.net.proxy) if u),
                     journey_headers=True)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        message = {**obj(MESSAGE_KEYS, {"contains": TEXT, "json": {"type": "object"}}),
                   "minProperties": 1}
        url = {"type": "string", "pattern": r"^(wss?://|https?://|\{\{|\$\{)"}
        types = {**NET, "url": url, "headers": STR_MAP, "send": STR_LIST,
                 "expect_message": message, "verify_tls": BOOL,
                 "max_messages": {"type": "integer", "minimum": 1, "maximum": 100_000}}
        return {"websocket": obj(WS_KEYS, types, required=("url",)),
                "expect": tls_expect(EXPECT_KEYS)}
