"""Runs `tls` steps (probes/net/tls/config.py): connect, handshake, and judge the served certificate.

The chain is verified by OpenSSL (system store plus `ca_file`) with host checking off, and the host
name is matched against the leaf's names separately, so a failure says which of the two broke and
why (expired, self-signed, wrong host, untrusted chain). When the chain is refused, a second,
unverified handshake still collects the certificate facts, so expiry is reported for a broken
chain too. Reports the tls_facts fields plus dns_ms, connect_ms, tls_ms.
"""

from __future__ import annotations

import ssl
from functools import lru_cache

from probes.common.castore import trust_system
from probes.common.netopts import load_client
from probes.common.netspec import NetSpec, render_net
from probes.common.ports import more, render_port
from probes.common.tls_expect import TlsExpect
from probes.common.tls_facts import TlsFacts, check_days_left, facts_of, hostname_matches, version_at_least
from probes.net import stream
from probes.net.tls.config import TlsSpec
from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.measure import check_latency, measured


def tls_expect_failures(exp: TlsExpect, facts: TlsFacts, chain_ok: bool, chain_why: str, host_ok: bool,
                        server_name: str) -> list[str]:
    failures = []
    if (msg := check_days_left(facts, exp.cert_days_left)) is not None:
        failures.append(msg)
    if exp.tls_version_min and not version_at_least(facts.version, exp.tls_version_min):
        failures.append(f"TLS version {facts.version or 'unknown'}, expected at least {exp.tls_version_min}")
    if exp.chain_valid is not None and exp.chain_valid != chain_ok:
        failures.append(f"chain_valid: expected {str(exp.chain_valid).lower()}, got "
                        + ("true" if chain_ok else f"false ({chain_why})"))
    if exp.hostname_valid is not None and exp.hostname_valid != host_ok:
        failures.append(f"hostname_valid: expected {str(exp.hostname_valid).lower()} for {quoted(server_name)}, got "
                        f"{str(host_ok).lower()} (certificate names {', '.join(facts.sans) or facts.subject})")
    return failures


@lru_cache(maxsize=32)
def chain_context(ca_file: str, client_cert: str = "", client_key: str = "") -> ssl.SSLContext:
    """Verifies the chain (system store + ca_file) but not the name: the probe checks that itself."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # create_default_context's, without its CA loading
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    trust_system(ctx)
    ctx.check_hostname = False
    load_client(ctx, client_cert, client_key)
    return ctx


@lru_cache(maxsize=32)
def open_context(client_cert: str = "", client_key: str = "") -> ssl.SSLContext:
    """Accepts any certificate (no CA store loaded: nothing to verify against)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    load_client(ctx, client_cert, client_key)
    return ctx


async def handshake(host: str, port: int, server_name: str, net: NetSpec, phases: stream.Phases, verify: bool
                    ) -> tuple[TlsFacts, bool | None, str]:
    """(facts, chain valid, why not). With `verify`: a verified handshake, and an open one to read
    the certificate if that was refused. Without: only the open one (chain validity unknown: None)."""
    where = f"{host}:{port}"
    try:
        verifying = chain_context(net.ca_file, net.client_cert, net.client_key) if verify else None
        opened = open_context(net.client_cert, net.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise StepFailure(ErrorClass.TLS, f"cannot load client_cert/ca_file: {exc}") from None
    _r, writer = await stream.open_stream(host, port, phases, net.ip_version)
    chain_ok: bool | None = None
    why = ""
    try:
        await stream.start_tls(writer, verifying or opened, server_name, phases, where)
        chain_ok = True if verify else None
    except StepFailure as exc:
        await stream.close(writer)
        if not verify or "not trusted" not in exc.message:
            raise
        chain_ok, why = False, exc.message.rsplit(": ", 1)[-1]
        _r, writer = await stream.open_stream(host, port, phases, net.ip_version)
        await stream.start_tls(writer, opened, server_name, phases, where)
    try:
        facts = facts_of(writer.get_extra_info("ssl_object"))
    finally:
        await stream.close(writer)
    if facts is None:
        raise StepFailure(ErrorClass.TLS, f"{where} sent no certificate that could be read")
    return facts, chain_ok, why


class TlsProbe(Probe):
    def __init__(self) -> None:
        # Load the CA store now, once per agent, so no run's duration pays for it.
        chain_context("")
        open_context()

    async def close(self) -> None:
        """Nothing held between runs."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: TlsSpec = step.spec
        phases = stream.Phases()

        async def body(result: StepResult) -> None:
            host, port = ctx.render(spec.host), render_port(ctx, spec.port)
            server_name = ctx.render(spec.server_name) or host
            result.url = f"tls://{host}:{port}"
            try:
                net = render_net(spec.net, ctx.render)
                # verify: false verifies the chain only when an expectation asks about it (one handshake)
                check_chain = spec.verify or spec.expect.chain_valid is not None
                facts, chain, why = await handshake(host, port, server_name, net, phases, check_chain)
            finally:
                result.phases = phases.as_dict()
            facts.apply(result)
            host_ok = hostname_matches(server_name, facts.sans)
            chain_ok = bool(chain)
            if chain is not None:
                result.metrics["chain_valid"] = float(chain_ok)
            result.metrics["hostname_valid"] = float(host_ok)
            if spec.verify and not chain_ok:
                raise StepFailure(ErrorClass.TLS, f"TLS certificate of {host}:{port} not trusted: {why}")
            if spec.verify and not host_ok:
                names = ", ".join(facts.sans) or facts.subject
                raise StepFailure(ErrorClass.TLS, f"TLS certificate of {host}:{port} is for the wrong host: "
                                                  f"{quoted(server_name)} is not among {names}")
            failures = tls_expect_failures(spec.expect, facts, chain_ok, why, host_ok, server_name)
            if failures:
                raise StepFailure(ErrorClass.TLS, more(failures))
            elapsed = sum(phases.as_dict().values()) / 1000
            check_latency(elapsed, spec.expect.latency_s)

        return await measured(step, "tls", body, lambda: phases.stage)
