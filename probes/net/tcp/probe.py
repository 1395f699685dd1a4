"""Runs `tcp` steps (probes/net/tcp/config.py): connect (optionally TLS), send, read until the
expectation holds — banner checks, like blackbox_exporter's tcp prober's query/response.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time

from probes.common.http_trace import ssl_context
from probes.common.netopts import context_for
from probes.common.netspec import render_net
from probes.common.ports import more, render_port
from probes.common.tls_facts import check_days_left, facts_of
from probes.net import stream
from probes.net.tcp.config import TcpSpec
from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult, Yielded
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.measure import check_latency, measured


def _shown(data: bytes, limit: int = 80) -> str:
    text = data.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


class TcpProbe(Probe):
    def __init__(self) -> None:
        ssl_context(True)  # the CA store, loaded once per agent, not in a run's duration

    async def close(self) -> None:
        """Nothing held between runs."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: TcpSpec = step.spec
        phases = stream.Phases()

        async def body(result: StepResult) -> None:
            host, port = ctx.render(spec.host), render_port(ctx, spec.port)
            result.url = f"tcp://{host}:{port}"
            try:
                await self._exchange(spec, ctx, host, port, phases, result, bool(step.extract))
            finally:
                result.phases = phases.as_dict()
            elapsed = sum(result.phases.values()) / 1000
            check_latency(elapsed, spec.expect.latency_s)

        return await measured(step, "tcp", body, lambda: phases.stage)

    async def _exchange(self, spec: TcpSpec, ctx: RunContext, host: str, port: int, phases: stream.Phases,
                        result: StepResult, extracts: bool) -> None:
        net = render_net(spec.net, ctx.render)
        tls_ctx: ssl.SSLContext | None = None
        if spec.tls:
            try:
                tls_ctx = context_for(spec.verify_tls, net)
            except (OSError, ssl.SSLError) as exc:
                raise StepFailure(ErrorClass.TLS, f"cannot load client_cert/ca_file: {exc}") from None
        reader, writer = await stream.open_stream(host, port, phases, net.ip_version)
        try:
            if tls_ctx is not None:
                await stream.start_tls(writer, tls_ctx, ctx.render(spec.server_name) or host, phases,
                                       f"{host}:{port}")
                facts = facts_of(writer.get_extra_info("ssl_object"))
                if facts is not None:
                    facts.apply(result)
                if (msg := check_days_left(facts, spec.expect.cert_days_left)) is not None:
                    raise StepFailure(ErrorClass.TLS, msg)
            t0 = time.perf_counter_ns()
            if spec.send:
                phases.stage = "send"
                writer.write(ctx.render(spec.send).encode())
                await writer.drain()
            if spec.expect_bytes or spec.expect_regex:
                data = await self._read(spec, ctx, reader, phases, t0)
                result.bytes = len(data)
            elif extracts:  # nothing to wait for: what `extract:` reads is the first bytes that arrive
                data = await self._first(spec, reader, phases, t0)
                result.bytes = len(data)
            else:
                data = b""
            if extracts:
                result.yielded = Yielded(body=data.decode("utf-8", "replace"))
        finally:
            await stream.close(writer)

    @staticmethod
    async def _first(spec: TcpSpec, reader: asyncio.StreamReader, phases: stream.Phases, t0: int) -> bytes:
        """The first bytes the server sends (a banner), within read_timeout; b"" when none come."""
        phases.stage = "waiting for the answer"
        try:
            async with asyncio.timeout(spec.read_timeout_s):
                data = await reader.read(spec.max_bytes)
        except TimeoutError:
            return b""
        except (ConnectionError, OSError) as exc:
            raise StepFailure(ErrorClass.CONNECT, f"connection failed while reading: {exc}") from None
        if data:
            phases.extra["ttfb_ms"] = stream.since_ms(t0)
        return data

    async def _read(self, spec: TcpSpec, ctx: RunContext, reader: asyncio.StreamReader, phases: stream.Phases,
                    t0: int) -> bytes:
        """Read until the expectation holds; fail on close, max_bytes or read_timeout without it."""
        needle = ctx.render(spec.expect_bytes).encode() if spec.expect_bytes else b""
        pattern = spec.pattern
        if spec.expect_regex and pattern is None:
            try:
                pattern = re.compile(ctx.render(spec.expect_regex))
            except re.error as exc:
                raise StepFailure(ErrorClass.ASSERTION, f"bad regular expression after rendering: {exc}") from None
        want = f"expect_bytes {quoted(spec.expect_bytes)}" if needle else f"expect_regex {quoted(spec.expect_regex)}"
        data = b""
        phases.stage = "waiting for the answer"
        try:
            async with asyncio.timeout(spec.read_timeout_s):
                while len(data) < spec.max_bytes:
                    chunk = await reader.read(spec.max_bytes - len(data))
                    if not chunk:
                        break
                    if not data:
                        phases.extra["ttfb_ms"] = stream.since_ms(t0)
                    data += chunk
                    if (needle and needle in data) or (
                            pattern is not None and pattern.search(data.decode("utf-8", "replace"))):
                        return data
        except TimeoutError:
            got = f"got {len(data)} bytes: {_shown(data)}" if data else "nothing arrived"
            raise StepFailure(ErrorClass.TIMEOUT, f"{want}: no match within read_timeout "
                                                  f"{spec.read_timeout_s:g}s ({got})") from None
        except (ConnectionError, OSError) as exc:
            raise StepFailure(ErrorClass.CONNECT, f"connection failed while reading: {exc}") from None
        why = "the server closed the connection" if len(data) < spec.max_bytes else f"max_bytes {spec.max_bytes} read"
        raise StepFailure(ErrorClass.ASSERTION, more([f"{want} not found: {why} after {len(data)} bytes: "
                                                      f"{_shown(data)}"]))
