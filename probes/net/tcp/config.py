"""The `tcp` step kind as the loader and the schema see it: connect (optionally TLS), send a line,
check what comes back — banner checks.

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

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from probes.common import schemas
from probes.common.netspec import NetSpec, parse_net
from probes.common.ports import host_port, parse_port
from probes.common.tls_expect import TlsExpect, parse_tls_expect
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import DURATION, TEXT, obj
from qos_agent.plugins.steps import StepKind, Yields

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
    r = Reader.section(node := step.get("tcp"), problems, TCP_KEYS, "tcp", required=("host",))
    if r is None or node is None:
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


class TcpKind(StepKind[TcpSpec]):
    kind: ClassVar[str] = "tcp"
    runtime: ClassVar[str] = "probes.net.tcp.probe:TcpProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})
    # Without expect_bytes/expect_regex, a step that extracts reads the first bytes that arrive.
    yields: ClassVar[Yields] = Yields(body="the bytes received")

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> TcpSpec:
        return parse_tcp(step, problems, load)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        types = {**schemas.COMMON, "send": {"type": "string"}, "expect_bytes": TEXT,
                 "expect_regex": TEXT, "read_timeout": DURATION,
                 "max_bytes": {"type": "integer", "minimum": 1, "maximum": 16 * 1024 * 1024}}
        return {"tcp": obj(TCP_KEYS, types, required=("host",)), "expect": schemas.tls_expect(EXPECT_KEYS)}
