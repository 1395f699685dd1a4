"""The `dns:` step: one query to one server, its rcode and answers checked (dnspython's asyncio API).

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

import asyncio
import re
import socket
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from probes.common import schemas
from probes.common.step_common import host_port, more, timed_run
from qos_agent.errors import StepFailure
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult
from qos_agent.plugins.context import LoadContext, RunContext
from qos_agent.plugins.steps import Probe

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
    if node is None:
        return DnsExpect()
    r = Reader(node, problems, EXPECT_KEYS, "expect")
    if not r.ok:
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
    node = step.get("dns")
    if node is None:
        return DnsSpec(name="", expect=expect)
    r = Reader(node, problems, DNS_KEYS, "dns", required=("name",))
    if not r.ok:
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


@cache
def system_nameserver() -> str:
    """The first nameserver of /etc/resolv.conf, read once."""
    try:
        servers = dns.resolver.Resolver().nameservers
    except dns.resolver.NoResolverConfiguration:
        servers = []
    return str(servers[0]) if servers else "127.0.0.1"


async def _address(host: str) -> str:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 53, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise StepFailure(ErrorClass.DNS, f"cannot resolve the DNS server {host}: {exc}") from None
    return str(infos[0][4][0])


def answers_of(response: dns.message.Message, rtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rtype)
    return [rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset]


def failures_of(exp: DnsExpect, answers: list[str], render: Any) -> list[str]:
    failures = []
    shown = ", ".join(answers)[:200] or "none"
    if len(answers) < exp.min_answers:
        failures.append(f"{len(answers)} answers, expected at least {exp.min_answers}")
    for item in exp.contains:
        want = render(item)
        if not any(want == a or want in a for a in answers):
            failures.append(f"answers contain {quoted(want)}: not among {shown}")
    if exp.matches:
        try:
            pattern = re.compile(render(exp.matches))
        except re.error as exc:
            return [*failures, f"answers matches: bad regular expression after rendering: {exc}"]
        if not any(pattern.search(a) for a in answers):
            failures.append(f"answers matches {quoted(exp.matches)}: none of {shown}")
    return failures


class DnsProbe(Probe[DnsSpec]):
    kind: ClassVar[str] = "dns"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> DnsSpec:
        return parse_dns(step, problems)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        nocase = "|".join(f"{t}|{t.lower()}" for t in TYPES)
        types = {"name": schemas.TEXT, "type": {"type": "string", "pattern": f"^({nocase})$"},
                 "server": {"type": "string", "pattern": schemas.HOST_OPT_PORT,
                            "description": "HOST or HOST:PORT (default: /etc/resolv.conf)"},
                 "transport": {"enum": ["udp", "tcp"]}}
        answers = schemas.obj(ANSWER_KEYS, {"contains": schemas.STR_LIST, "matches": schemas.TEXT})
        expect = {"rcode": {"type": "string", "pattern": "^(" + "|".join(f"{r}|{r.lower()}" for r in RCODES) + ")$"},
                  "answers": answers, "min_answers": {"type": "integer", "minimum": 0, "maximum": 1000},
                  "latency": schemas.DURATION}
        return {"dns": schemas.obj(DNS_KEYS, types, required=("name",)), "expect": schemas.obj(EXPECT_KEYS, expect)}

    @classmethod
    def provides(cls, spec: Any) -> set[str]:
        return set()

    async def close(self) -> None:
        """Nothing held between runs."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: DnsSpec = step.spec
        stage = ["starting"]

        async def body(result: StepResult) -> None:
            name = ctx.render(spec.name)
            host, given = host_port(ctx.render(spec.server) or system_nameserver(), 53)
            port = given or 53
            where = await _address(host)
            result.url = f"dns://{host}:{port}/{name}?type={spec.type}"
            try:
                query = dns.message.make_query(name, spec.type)
            except (dns.exception.DNSException, ValueError) as exc:
                raise StepFailure(ErrorClass.INTERNAL, f"cannot ask for {quoted(name)}: {exc}") from None
            stage[0] = f"waiting for {host}:{port} over {spec.transport}"
            ask = dns.asyncquery.tcp if spec.transport == "tcp" else dns.asyncquery.udp
            t0 = time.perf_counter_ns()
            try:
                response = await ask(query, where, port=port, timeout=step.timeout_s)
            except dns.exception.Timeout:
                raise TimeoutError from None
            except (OSError, dns.exception.DNSException) as exc:
                kind = ErrorClass.CONNECT if isinstance(exc, OSError) else ErrorClass.DNS
                raise StepFailure(kind, f"DNS query to {host}:{port} failed: {exc}") from None
            finally:
                result.phases = {"dns_ms": round((time.perf_counter_ns() - t0) / 1e6, 3)}
            rcode = dns.rcode.to_text(response.rcode())
            answers = answers_of(response, spec.type)
            result.bytes = len(response.to_wire())
            result.metrics["answer_count"] = float(len(answers))
            result.text.update(rcode=rcode, answers=", ".join(answers))
            if rcode != spec.expect.rcode:
                raise StepFailure(ErrorClass.DNS, f"{name} {spec.type}: rcode {rcode}, expected {spec.expect.rcode}")
            failures = failures_of(spec.expect, answers, ctx.render)
            latency = spec.expect.latency_s
            if latency is not None and result.phases["dns_ms"] > latency * 1000:
                failures.append(f"latency {result.phases['dns_ms']:.0f}ms, expected under {latency * 1000:.0f}ms")
            if failures:
                raise StepFailure(ErrorClass.ASSERTION, more(failures))

        return await timed_run(step, ctx, self.kind, body, lambda: stage[0])
