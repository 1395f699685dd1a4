"""Certificates with chosen expiry, served on 127.0.0.1: the tls step and the facts of every HTTPS http step."""

from __future__ import annotations

import time

import pytest

from probes.http.probe import HttpProbe
from probes.net.tls.probe import TlsProbe
from qos_agent.delivery.points import step_point
from qos_agent.model import ErrorClass, JourneyKind, JourneyResult, Outcome, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.certs import Issued, Pki, tls_server
from tests.support.faults import http_server
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


async def tls_step(ctx: RunContext, text: str, timeout_s: float = 5.0) -> StepResult:
    spec, problems = parse_step("tls", text)
    assert not problems, [str(p) for p in problems.sorted()]
    return await run_step(TlsProbe(), make_step(spec, kind="tls", timeout_s=timeout_s), ctx)


async def http_step(ctx: RunContext, text: str) -> StepResult:
    spec, problems = parse_step("http", text)
    assert not problems, [str(p) for p in problems.sorted()]
    return await run_step(HttpProbe(), make_step(spec), ctx)


def days_left(issued: Issued) -> float:
    return (issued.not_after.timestamp() - time.time()) / 86400


def failed(r: StepResult, error: ErrorClass) -> str:
    assert r.outcome is Outcome.FAILED, r
    assert r.error is error, (r.error, r.error_message)
    return r.error_message


async def test_200_days_passes_with_facts_within_a_day_of_the_truth(pki: Pki) -> None:
    leaf = pki.leaf(days=200)
    async with tls_server(leaf) as port, run_context({"port": str(port)}) as ctx:
        r = await tls_step(ctx, f'tls: {{host: 127.0.0.1, port: "{{{{ port }}}}", server_name: localhost, '
                                f'ca_file: {pki.ca_file}}}\nexpect: {{cert_days_left: 14, tls_version_min: "1.2", '
                                'hostname_valid: true, chain_valid: true}')
    assert r.outcome is Outcome.PASSED, r.error_message
    assert abs(r.metrics["cert_expiry_days"] - 200) < 1
    assert abs(r.metrics["cert_not_after_ms"] / 1000 - leaf.not_after.timestamp()) < 1
    assert r.text["tls_version"] in ("TLSv1.2", "TLSv1.3") and r.text["tls_cipher"]
    assert r.text["cert_subject"] == "localhost" and r.text["cert_issuer"] == "QoS Test Intermediate"
    assert r.phases["connect_ms"] > 0 and r.phases["tls_ms"] > 0
    assert r.metrics["chain_valid"] == 1.0 and r.metrics["hostname_valid"] == 1.0


async def test_3_days_left_fails_cert_days_left_14_as_tls(pki: Pki) -> None:
    leaf = pki.leaf(days=3)
    async with tls_server(leaf) as port, run_context() as ctx:
        r = await tls_step(ctx, f"tls: {{host: localhost, port: {port}, ca_file: {pki.ca_file}}}\n"
                                "expect: {cert_days_left: 14}")
    msg = failed(r, ErrorClass.TLS)
    assert "expires in 2.9 days" in msg or "expires in 3.0 days" in msg, msg
    assert abs(r.metrics["cert_expiry_days"] - days_left(leaf)) < 1 / 24


async def test_earliest_expiry_over_the_chain_is_the_intermediate_when_it_ends_first(pki: Pki) -> None:
    leaf = pki.leaf(days=2000)  # the intermediate ends after 1000 days
    async with tls_server(leaf) as port, run_context() as ctx:
        r = await tls_step(ctx, f"tls: {{host: localhost, port: {port}, ca_file: {pki.ca_file}}}")
    assert r.outcome is Outcome.PASSED, r.error_message
    assert abs(r.metrics["cert_expiry_days"] - 1000) < 1


@pytest.mark.parametrize(("kind", "reason"), [
    ("expired", "certificate expired"),
    ("self_signed", "self-signed certificate"),
    ("wrong_host", "wrong host"),
    ("missing_intermediate", "untrusted chain"),
])
async def test_a_refused_certificate_says_why_and_still_reports_its_expiry(pki: Pki, kind: str, reason: str) -> None:
    leaf = {
        "expired": lambda: pki.leaf(expired=True),
        "self_signed": lambda: pki.leaf(self_signed=True),
        "wrong_host": lambda: pki.leaf(names=("other.test",)),
        "missing_intermediate": lambda: pki.leaf(with_intermediate=False),
    }[kind]()
    async with tls_server(leaf) as port, run_context() as ctx:
        r = await tls_step(ctx, f"tls: {{host: localhost, port: {port}, ca_file: {pki.ca_file}}}")
        lenient = await tls_step(ctx, f"tls: {{host: localhost, port: {port}, ca_file: {pki.ca_file}, verify: false}}")
    assert reason in failed(r, ErrorClass.TLS)
    assert abs(r.metrics["cert_expiry_days"] - days_left(leaf)) < 1
    assert lenient.outcome is Outcome.PASSED, lenient.error_message
    if kind == "expired":
        assert r.metrics["cert_expiry_days"] < 0
    if kind == "wrong_host":
        assert r.metrics["chain_valid"] == 1.0 and r.metrics["hostname_valid"] == 0.0


async def test_expectations_on_validity_apply_when_verify_is_off(pki: Pki) -> None:
    leaf = pki.leaf(self_signed=True)
    async with tls_server(leaf) as port, run_context() as ctx:
        r = await tls_step(ctx, f"tls: {{host: localhost, port: {port}, verify: false}}\nexpect: {{chain_valid: true}}")
    assert "chain_valid: expected true, got false (self-signed certificate)" in failed(r, ErrorClass.TLS)


async def test_refused_port_and_bad_name_are_connect_and_dns() -> None:
    from tests.support.faults import closed_port

    async with run_context() as ctx:
        refused = await tls_step(ctx, f"tls: {{host: 127.0.0.1, port: {closed_port()}}}")
        unknown = await tls_step(ctx, "tls: {host: no-such-host.invalid, port: 443}")
    assert "connection refused" in failed(refused, ErrorClass.CONNECT)
    assert "cannot resolve no-such-host.invalid" in failed(unknown, ErrorClass.DNS)


# ---------------------------------------------------------------------------------------------
# Every HTTPS http step
# ---------------------------------------------------------------------------------------------


async def test_https_http_step_reports_certificate_facts_and_reused_connections_keep_them(pki: Pki) -> None:
    leaf = pki.leaf(days=200)
    async with http_server("localhost", tls=leaf) as srv, run_context({"base": srv.base}) as ctx:
        first = await http_step(ctx, f'http: {{url: "{{{{ base }}}}/ok", ca_file: {pki.ca_file}}}\n'
                                     "expect: {cert_days_left: 14}")
        second = await http_step(ctx, f'http: {{url: "{{{{ base }}}}/ok", ca_file: {pki.ca_file}}}')
    assert first.outcome is second.outcome is Outcome.PASSED, (first.error_message, second.error_message)
    assert abs(first.metrics["cert_expiry_days"] - 200) < 1
    assert second.phases["tls_ms"] == 0  # reused: no handshake, yet the facts of the one that made it
    assert second.metrics["cert_not_after_ms"] == first.metrics["cert_not_after_ms"]
    assert second.text == first.text and first.text["cert_issuer"] == "QoS Test Intermediate"
    result = JourneyResult("j", JourneyKind.JOURNEY, "eu", "a", "r", 0, Outcome.PASSED, 1.0, [first])
    fields = dict(step_point(result, first).fields)
    assert isinstance(fields["cert_expiry_days"], float) and fields["tls_version"] == first.text["tls_version"]
    assert fields["cert_subject"] == "localhost"


async def test_https_http_step_with_3_days_left_fails_as_tls(pki: Pki) -> None:
    leaf = pki.leaf(days=3)
    async with http_server("localhost", tls=leaf) as srv, run_context({"base": srv.base}) as ctx:
        r = await http_step(ctx, f'http: {{url: "{{{{ base }}}}/ok", ca_file: {pki.ca_file}}}\n'
                                 "expect: {cert_days_left: 14}")
    assert "cert_days_left: 14" in failed(r, ErrorClass.TLS)
    assert r.status_code == 200 and r.metrics["cert_expiry_days"] < 3.01


async def test_expired_certificate_on_http_with_verify_off_still_reports_negative_days(pki: Pki) -> None:
    leaf = pki.leaf(expired=True)
    async with http_server("localhost", tls=leaf) as srv, run_context({"base": srv.base}) as ctx:
        r = await http_step(ctx, 'http: {url: "{{ base }}/ok", verify_tls: false}')
    assert r.outcome is Outcome.PASSED and r.metrics["cert_expiry_days"] < -1


async def test_plain_http_has_no_certificate_fields_and_cert_days_left_fails() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        plain = await http_step(ctx, 'http: {url: "{{ base }}/ok"}')
        asked = await http_step(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {cert_days_left: 1}')
    assert plain.outcome is Outcome.PASSED and "cert_expiry_days" not in plain.metrics
    assert plain.text == {"http_method": "GET"}  # no tls_version, cert_issuer...: nothing of a handshake
    assert "not TLS" in failed(asked, ErrorClass.TLS)
