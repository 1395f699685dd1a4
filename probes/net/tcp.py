"""The `tcp:` step: connect (optionally TLS), send a line, check what comes back — banner checks.

    - name: redis
      tcp: {host: 127.0.0.1, port: 6379, send: "PING\\r\\n", expect_bytes: "+PONG", read_timeout: 2s}
    - name: smtp
      tcp: {host: mail.example, port: 465, tls: true, expect_regex: "^220 "}

Like blackbox_exporter's tcp prober's query/response: with an expectation the probe reads until it
matches, the peer closes, `max_bytes` arrive or `read_timeout` passes (class `timeout`: the server
said nothing in time). Phases: dns_ms, connect_ms, tls_ms (tls: true), ttfb_ms (send, or connect, to
the first byte). With tls, the certificate facts of tls_facts are reported and `expect:
{cert_days_left: N}` applies.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from probes.common import schemas
from probes.common.http_trace import ssl_context
from probes.common.netopts import NetSpec, context_for, parse_net, render_net
from probes.common.step_common import host_port, more, parse_port, render_port, timed_run
from probes.common.tls_facts import check_days_left, facts_of
from probes.net import stream
from probes.net.tls import TlsExpect, parse_tls_expect
from qos_agent.errors import StepFailure
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult
from qos_agent.plugins.context import LoadContext, RunContext
from qos_agent.plugins.steps import Probe

TCP_KEYS = ("host", "port", "tls", "server_name", "verify_tls", "ca_file", "client_cert", "client_key", "ip_version",
            "send", "expect_bytes", "expect_regex", "read_timeout", "max_bytes")
EXPECT_KEYS = ("cert_days_left", "latency")


@dataclass(frozen=True, slots=True)
class TcpSpec:
    host: str
    port: str = ""
    tls: bool = False
    server_name: str = ""
    verify_tls: bool = True
    net: NetSpec = field(default_factory=NetSpec)
    send: str = ""
    expect_bytes: str = ""
    expect_regex: str = ""
    pattern: re.Pattern[str] | None = None  # compiled at load when the regex has no template
    read_timeout_s: float = 5.0
    max_bytes: int = 64 * 1024
    expect: TlsExpect = field(default_factory=TlsExpect)


def parse_tcp(step: Node, problems: Problems, load: LoadContext) -> TcpSpec:
    expect = parse_tls_expect(step.get("expect"), problems, EXPECT_KEYS)
    node = step.get("tcp")
    if node is None:
        return TcpSpec(host="", expect=expect)
    r = Reader(node, problems, TCP_KEYS, "tcp", required=("host",))
    if not r.ok:
        return TcpSpec(host="", expect=expect)
    host, port_in_host = host_port(r.str("host", ""), None)
    port = parse_port(r, problems, port_in_host)
    if not port and r.has("host") and not r.has("port"):
        problems.add(node.loc, "tcp needs a port", "add port: 6379 (or write host: name:6379)")
    if r.has("expect_bytes") and r.has("expect_regex"):
        problems.add(node.key_loc("expect_regex"), "'tcp' has both 'expect_bytes' and 'expect_regex'",
                     "keep one of them")
    regex = r.str("expect_regex", "")
    pattern = None
    if regex and not has_template(regex):
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            problems.add(r.get("expect_regex").loc, f"bad regular expression {quoted(regex)}: {exc}",  # type: ignore[union-attr]
                         "fix the pattern")
    return TcpSpec(
        host=host, port=port, tls=r.bool("tls", False), server_name=r.str("server_name", ""),
        verify_tls=r.bool("verify_tls", True), net=parse_net(r, problems, load.config_dir),
        send=r.str("send", ""), expect_bytes=r.str("expect_bytes", ""), expect_regex=regex, pattern=pattern,
        read_timeout_s=r.duration("read_timeout", 5.0), max_bytes=r.int("max_bytes", 64 * 1024, 1, 16 * 1024 * 1024),
        expect=expect,
    )


def _shown(data: bytes, limit: int = 80) -> str:
    text = data.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


class TcpProbe(Probe[TcpSpec]):
    kind: ClassVar[str] = "tcp"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})

    def __init__(self) -> None:
        ssl_context(True)  # the CA store, loaded once per agent, not in a run's duration

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> TcpSpec:
        return parse_tcp(step, problems, load)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        types = {**schemas.COMMON, "send": {"type": "string"}, "expect_bytes": schemas.TEXT,
                 "expect_regex": schemas.TEXT, "read_timeout": schemas.DURATION,
                 "max_bytes": {"type": "integer", "minimum": 1, "maximum": 16 * 1024 * 1024}}
        return {"tcp": schemas.obj(TCP_KEYS, types, required=("host",)), "expect": schemas.tls_expect(EXPECT_KEYS)}

    @classmethod
    def provides(cls, spec: Any) -> set[str]:
        return set()

    async def close(self) -> None:
        """Nothing held between runs."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: TcpSpec = step.spec
        phases = stream.Phases()

        async def body(result: StepResult) -> None:
            host, port = ctx.render(spec.host), render_port(ctx, spec.port)
            result.url = f"tcp://{host}:{port}"
            try:
                await self._exchange(spec, ctx, host, port, phases, result)
            finally:
                result.phases = phases.as_dict()
            elapsed = sum(result.phases.values()) / 1000
            if spec.expect.latency_s is not None and elapsed > spec.expect.latency_s:
                raise StepFailure(ErrorClass.ASSERTION, f"latency {elapsed * 1000:.0f}ms, expected under "
                                                        f"{spec.expect.latency_s * 1000:.0f}ms")

        return await timed_run(step, ctx, self.kind, body, lambda: phases.stage)

    async def _exchange(self, spec: TcpSpec, ctx: RunContext, host: str, port: int, phases: stream.Phases,
                        result: StepResult) -> None:
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
        finally:
            await stream.close(writer)

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
