"""The `dns` step kind as the loader and the schema see it: one query to one server, its rcode and
answers checked (dnspython's asyncio API, imported only by probes/net/dns/probe.py).

    - name: resolve
      dns: {name: shop.example, type: A, server: 127.0.0.1:5353, transport: udp}
      expect: {rcode: NOERROR, answers: {contains: [127.0.0.1]}, min_answers: 1}

The query goes to the named server (default: the first nameserver of /etc/resolv.conf), not through
the system's caching stub, so `dns_ms` is the server's real answer time, like blackbox_exporter's
dns prober. An rcode other than the expected one fails with class `dns`; answers that do not satisfy
`expect` fail with `assertion`; no answer within the step's timeout is `timeout`.
Reports `dns_ms`, `answer_count`, and the fields `rcode` and `answers` (the answer records of the
asked type as text, joined by ", ").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from probes.common import schemas
from probes.common.ports import host_port
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import DURATION, STR_LIST, TEXT, obj
from qos_agent.plugins.steps import StepKind, Yields

TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
DNS_KEYS = ("name", "type", "server", "transport")
EXPECT_KEYS = ("rcode", "answers", "min_answers", "latency")
ANSWER_KEYS = ("contains", "matches")


@dataclass(frozen=True, slots=True)
class DnsExpect:
    rcode: str = "NOERROR"
    contains: tuple[str, ...] = ()
    matches: str = ""
    min_answers: int = 0
    latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class DnsSpec:
    name: str
    type: str = "A"
    server: str = ""  # host[:port]; empty: the system's first nameserver
    transport: str = "udp"
    expect: DnsExpect = field(default_factory=DnsExpect)


def _expect(node: Node | None, problems: Problems) -> DnsExpect:
    r = Reader.section(node, problems, EXPECT_KEYS, "expect")
    if r is None:
        return DnsExpect()
    rcode = r.str("rcode", "NOERROR").upper()
    if rcode not in RCODES and (n := r.get("rcode")) is not None:
        problems.add(n.loc, f"'rcode' is {quoted(n.value)}", suggest(rcode, RCODES))
        rcode = "NOERROR"
    contains: tuple[str, ...] = ()
    matches = ""
    an = r.get("answers")
    if an is not None:
        a = Reader(an, problems, ANSWER_KEYS, "expect.answers")
        contains, matches = a.str_list("contains"), a.str("matches", "")
        if a.ok and not (contains or matches):
            problems.add(an.loc, "'expect.answers' has no condition", "write answers: {contains: [192.0.2.1]}")
        if matches and not has_template(matches):
            try:
                re.compile(matches)
            except re.error as exc:
                problems.add(an.get("matches").loc, f"bad regular expression {quoted(matches)}: {exc}",  # type: ignore[union-attr]
                             "fix the pattern")
    return DnsExpect(rcode=rcode, contains=contains, matches=matches,
                     min_answers=r.int("min_answers", 0, minimum=0, maximum=1000),
                     latency_s=(r.duration("latency", 0.0) or None) if r.has("latency") else None)


def parse_dns(step: Node, problems: Problems) -> DnsSpec:
    expect = _expect(step.get("expect"), problems)
    r = Reader.section(step.get("dns"), problems, DNS_KEYS, "dns", required=("name",))
    if r is None:
        return DnsSpec(name="", expect=expect)
    rtype = r.str("type", "A").upper()
    if rtype not in TYPES and (n := r.get("type")) is not None:
        problems.add(n.loc, f"DNS type {quoted(n.value)} is not supported", suggest(rtype, TYPES))
        rtype = "A"
    server = r.str("server", "")
    sn = r.get("server")
    if server and sn is not None and not has_template(server):
        host, port = host_port(server, 53)
        if not host or port is None or not 1 <= port <= 65535 or server.rstrip().endswith(":"):
            problems.add(sn.loc, f"'server' is {quoted(server)}, not HOST or HOST:PORT", "write server: 127.0.0.1:5353")
    return DnsSpec(name=r.str("name", ""), type=rtype, server=server,
                   transport=r.choice("transport", ("udp", "tcp"), "udp"), expect=expect)


class DnsKind(StepKind[DnsSpec]):
    kind: ClassVar[str] = "dns"
    runtime: ClassVar[str] = "probes.net.dns.probe:DnsProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})
    yields: ClassVar[Yields] = Yields(body="the answers, one per line", fields=("rcode", "answers"))

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> DnsSpec:
        return parse_dns(step, problems)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        nocase = "|".join(f"{t}|{t.lower()}" for t in TYPES)
        types = {"name": TEXT, "type": {"type": "string", "pattern": f"^({nocase})$"},
                 "server": {"type": "string", "pattern": schemas.HOST_OPT_PORT,
                            "description": "HOST or HOST:PORT (default: /etc/resolv.conf)"},
                 "transport": {"enum": ["udp", "tcp"]}}
        answers = obj(ANSWER_KEYS, {"contains": STR_LIST, "matches": TEXT})
        expect = {"rcode": {"type": "string", "pattern": "^(" + "|".join(f"{r}|{r.lower()}" for r in RCODES) + ")$"},
                  "answers": answers, "min_answers": {"type": "integer", "minimum": 0, "maximum": 1000},
                  "latency": DURATION}
        return {"dns": obj(DNS_KEYS, types, required=("name",)), "expect": obj(EXPECT_KEYS, expect)}
