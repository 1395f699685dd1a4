"""The `websocket:` step: upgrade, send messages, wait for the expected one (aiohttp's client).

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

import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from yarl import URL

from probes.common import schemas
from probes.common.assertions import MISSING, Check, check_json, parse_json_checks
from probes.common.http_trace import CURRENT, RequestTrace, timed_session
from probes.common.netopts import (
    NET_KEYS,
    NetSpec,
    connector_for,
    context_for,
    env_names_a_proxy,
    parse_net,
    render_net,
)
from probes.common.step_common import timed_run
from probes.common.tls_facts import check_days_left, facts_of
from probes.net.tls import TlsExpect, parse_tls_expect
from qos_agent.errors import StepFailure
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult
from qos_agent.plugins.context import LoadContext, RunContext
from qos_agent.plugins.steps import Probe

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
    node = step.get("websocket")
    if node is None:
        return WsSpec(url="", expect=expect)
    r = Reader(node, problems, WS_KEYS, "websocket", required=("url",))
    if not r.ok:
        return WsSpec(url="", expect=expect)
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


def _matches(spec: WsSpec, ctx: RunContext, text: str) -> list[str]:
    """What the message fails of expect_message (empty: it matches)."""
    failures = []
    if spec.contains and (want := ctx.render(spec.contains)) not in text:
        failures.append(f"expect_message contains {quoted(want)}: got {quoted(text[:80])}")
    if spec.json:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = MISSING
        failures += ["expect_message.json: not JSON"] if doc is MISSING else check_json(spec.json, doc,
                                                                                        ctx.render_deep)
    return failures


class WebSocketProbe(Probe[WsSpec]):
    kind: ClassVar[str] = "websocket"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})

    def __init__(self) -> None:
        self.trust_env = env_names_a_proxy()  # once per agent, as the http step does

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> WsSpec:
        return parse_ws(step, problems, load)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        message = {**schemas.obj(MESSAGE_KEYS, {"contains": schemas.TEXT, "json": {"type": "object"}}),
                   "minProperties": 1}
        url = {"type": "string", "pattern": r"^(wss?://|https?://|\{\{|\$\{)"}
        types = {**schemas.NET, "url": url, "headers": schemas.STR_MAP, "send": schemas.STR_LIST,
                 "expect_message": message, "verify_tls": schemas.BOOL,
                 "max_messages": {"type": "integer", "minimum": 1, "maximum": 100_000}}
        return {"websocket": schemas.obj(WS_KEYS, types, required=("url",)),
                "expect": schemas.tls_expect(EXPECT_KEYS)}

    @classmethod
    def provides(cls, spec: Any) -> set[str]:
        return set()

    async def close(self) -> None:
        """Nothing held between runs: each step opens and closes its own connection."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: WsSpec = step.spec
        trace = RequestTrace()
        stage = [""]  # set once upgraded; before that the trace knows the stage

        async def body(result: StepResult) -> None:
            try:
                await self._converse(spec, ctx, trace, stage, result)
            finally:
                result.phases = {**trace.phases(), **result.phases}
                result.phases.pop("transfer_ms", None)
                result.phases.pop("ttfb_ms", None)

        return await timed_run(step, ctx, self.kind, body, lambda: stage[0] or trace.stage)

    async def _converse(self, spec: WsSpec, ctx: RunContext, trace: RequestTrace, stage: list[str],
                        result: StepResult) -> None:
        url = URL(ctx.render(spec.url))
        result.url = str(url)
        net = render_net(spec.net, ctx.render)
        try:
            tls = context_for(spec.verify_tls, net)
        except (OSError, ValueError) as exc:
            raise StepFailure(ErrorClass.TLS, f"cannot load client_cert/ca_file: {exc}") from None
        headers = {name: ctx.render(value) for name, value in (*ctx.journey.headers, *spec.headers)}
        headers.update({"X-QoS-Region": ctx.region, "X-QoS-Agent": ctx.agent})
        async with timed_session(connector_for(net), cookie_jar=ctx.cookie_jar, trust_env=self.trust_env) as session:
            token = CURRENT.set(trace)
            t0 = time.perf_counter_ns()
            try:
                ws = await session.ws_connect(url, headers=headers, ssl=tls, proxy=net.proxy or None,
                                              autoping=True)
            except aiohttp.WSServerHandshakeError as exc:
                raise StepFailure(ErrorClass.STATUS, f"upgrade refused: HTTP {exc.status} {exc.message}") from None
            except aiohttp.ClientError as exc:
                from probes.common.http_errors import classify

                error, message = classify(exc, trace.stage, 0)
                raise StepFailure(error, message) from None
            finally:
                CURRENT.reset(token)
            upgraded = time.perf_counter_ns()
            p = trace.phases()
            result.phases["upgrade_ms"] = round((upgraded - t0) / 1e6 - p["dns_ms"] - p["connect_ms"] - p["tls_ms"], 3)
            result.status_code = 101
            async with ws:
                facts = facts_of(ws.get_extra_info("ssl_object"))
                if facts is not None:
                    facts.apply(result)
                if url.scheme in ("wss", "https") and (msg := check_days_left(facts, spec.expect.cert_days_left)):
                    raise StepFailure(ErrorClass.TLS, msg)
                stage[0] = "send"
                for message in spec.send:
                    await ws.send_str(ctx.render(message))
                sent = time.perf_counter_ns()
                if spec.waits:
                    stage[0] = "waiting for the expected message"
                    await self._wait(spec, ctx, ws, sent, result)
        elapsed = (time.perf_counter_ns() - t0) / 1e9
        if spec.expect.latency_s is not None and elapsed > spec.expect.latency_s:
            raise StepFailure(ErrorClass.ASSERTION, f"latency {elapsed * 1000:.0f}ms, expected under "
                                                    f"{spec.expect.latency_s * 1000:.0f}ms")

    async def _wait(self, spec: WsSpec, ctx: RunContext, ws: aiohttp.ClientWebSocketResponse, sent: int,
                    result: StepResult) -> None:
        last: list[str] = []
        for count in range(spec.max_messages):
            msg = await ws.receive()
            if count == 0:
                result.phases["first_message_ms"] = round((time.perf_counter_ns() - sent) / 1e6, 3)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                code = ws.close_code if ws.close_code is not None else msg.data
                reason = f" ({msg.extra})" if msg.extra else ""
                error = ErrorClass.ASSERTION if code in (1000, None) else ErrorClass.STATUS
                raise StepFailure(error, f"server closed the websocket with code {code}{reason} "
                                         "before the expected message")
            if msg.type == aiohttp.WSMsgType.ERROR:
                raise StepFailure(ErrorClass.CONNECT, f"websocket error: {ws.exception()}")
            text = msg.data if isinstance(msg.data, str) else bytes(msg.data).decode("utf-8", "replace")
            result.bytes += len(text)
            last = _matches(spec, ctx, text)
            if not last:
                return
        raise StepFailure(ErrorClass.ASSERTION, f"none of {spec.max_messages} messages matched: {last[0]}")
