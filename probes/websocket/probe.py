"""Runs `websocket` steps (probes/websocket/config.py) with aiohttp's client: upgrade, send, wait
for the expected message.
"""

from __future__ import annotations

import json
import time

import aiohttp
from yarl import URL

from probes.common.assertions import check_json
from probes.common.http_errors import classify
from probes.common.http_trace import CURRENT, RequestTrace, timed_session
from probes.common.netopts import connector_for, context_for, env_names_a_proxy
from probes.common.netspec import render_net
from probes.common.tls_facts import check_days_left, facts_of
from probes.websocket.config import WsSpec
from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult, Yielded
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.jsondoc import MISSING
from qos_agent.steps.measure import check_latency, measured

EXCERPT_SOURCE = 2048  # characters kept of the last message of a failed step, before masking cuts it


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


class WebSocketProbe(Probe):
    def __init__(self) -> None:
        self.trust_env = env_names_a_proxy()  # once per agent, as the http step does

    async def close(self) -> None:
        """Nothing held between runs: each step opens and closes its own connection."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: WsSpec = step.spec
        trace = RequestTrace()
        stage = [""]  # set once upgraded; before that the trace knows the stage

        async def body(result: StepResult) -> None:
            try:
                await self._converse(spec, ctx, trace, stage, result, bool(step.extract))
            finally:
                result.phases = {**trace.phases(), **result.phases}
                result.phases.pop("transfer_ms", None)
                result.phases.pop("ttfb_ms", None)

        return await measured(step, "websocket", body, lambda: stage[0] or trace.stage)

    async def _converse(self, spec: WsSpec, ctx: RunContext, trace: RequestTrace, stage: list[str],
                        result: StepResult, extracts: bool) -> None:
        url = URL(ctx.render(spec.url))
        result.url = str(url)
        net = render_net(spec.net, ctx.render)
        try:
            tls = context_for(spec.verify_tls, net)
        except (OSError, ValueError) as exc:
            raise StepFailure(ErrorClass.TLS, f"cannot load client_cert/ca_file: {exc}") from None
        headers = {name: ctx.render(value) for name, value in (*ctx.journey.headers, *spec.headers)}
        headers.update({"X-QoS-Region": ctx.region, "X-QoS-Agent": ctx.agent})
        if (traceparent := ctx.traceparent_header()) is not None and "traceparent" not in map(str.lower, headers):
            headers["traceparent"] = traceparent
        async with timed_session(connector_for(net), cookie_jar=ctx.cookie_jar, trust_env=self.trust_env) as session:
            token = CURRENT.set(trace)
            t0 = time.perf_counter_ns()
            try:
                ws = await session.ws_connect(url, headers=headers, ssl=tls, proxy=net.proxy or None,
                                              autoping=True)
            except aiohttp.WSServerHandshakeError as exc:
                raise StepFailure(ErrorClass.STATUS, f"upgrade refused: HTTP {exc.status} {exc.message}") from None
            except aiohttp.ClientError as exc:
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
                if spec.waits or extracts:  # without expect_message, `extract:` reads the first message
                    stage[0] = "waiting for the expected message"
                    await self._wait(spec, ctx, ws, sent, result, extracts)
        elapsed = (time.perf_counter_ns() - t0) / 1e9
        check_latency(elapsed, spec.expect.latency_s)

    async def _wait(self, spec: WsSpec, ctx: RunContext, ws: aiohttp.ClientWebSocketResponse, sent: int,
                    result: StepResult, extracts: bool) -> None:
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
            result.body_excerpt = text[:EXCERPT_SOURCE]  # kept (masked, cut) only if the step fails
            last = _matches(spec, ctx, text)
            if not last:
                result.body_excerpt = ""
                if extracts:
                    result.yielded = Yielded(body=text, url=result.url)
                return
        raise StepFailure(ErrorClass.ASSERTION, f"none of {spec.max_messages} messages matched: {last[0]}")
