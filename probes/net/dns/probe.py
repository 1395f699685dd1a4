"""Runs `dns` steps (probes/net/dns/config.py): one query to one server with dnspython's asyncio
API, its rcode and answers checked.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from functools import cache
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver

from probes.common.ports import host_port, more
from probes.net.dns.config import DnsExpect, DnsSpec
from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult, Yielded
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.measure import latency_failure, measured


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


class DnsProbe(Probe):
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
            if step.extract:
                result.yielded = Yielded(body="\n".join(answers))
            if rcode != spec.expect.rcode:
                raise StepFailure(ErrorClass.DNS, f"{name} {spec.type}: rcode {rcode}, expected {spec.expect.rcode}")
            failures = failures_of(spec.expect, answers, ctx.render)
            latency, took_s = spec.expect.latency_s, result.phases["dns_ms"] / 1000
            if latency is not None and took_s > latency:
                failures.append(latency_failure(took_s, latency))
            if failures:
                raise StepFailure(ErrorClass.ASSERTION, more(failures))

        return await measured(step, "dns", body, lambda: stage[0])
