"""The dns step against a real dnsmasq on a loopback port: answers, rcodes, transports, a silent server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from probes.net.dns.probe import DnsProbe
from qos_agent.model import ErrorClass, Outcome, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.dnsmasq import dnsmasq
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with dnsmasq() as port:
        yield f"127.0.0.1:{port}"


async def ask(ctx: RunContext, text: str, timeout_s: float = 5.0) -> StepResult:
    spec, problems = parse_step("dns", text)
    assert not problems, [str(p) for p in problems.sorted()]
    return await run_step(DnsProbe(), make_step(spec, kind="dns", timeout_s=timeout_s), ctx)


def failed(r: StepResult, error: ErrorClass) -> str:
    assert r.outcome is Outcome.FAILED, r
    assert r.error is error, (r.error, r.error_message)
    return r.error_message


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_record_answers_over_udp_and_tcp(server: str, transport: str) -> None:
    async with run_context({"dns": server}) as ctx:
        r = await ask(ctx, f'dns: {{name: shop.test, server: "{{{{ dns }}}}", transport: {transport}}}\n'
                           "expect: {rcode: NOERROR, answers: {contains: [127.0.0.1]}, min_answers: 1}")
    assert r.outcome is Outcome.PASSED, r.error_message
    assert r.text == {"rcode": "NOERROR", "answers": "127.0.0.1"}
    assert r.metrics["answer_count"] == 1 and r.phases["dns_ms"] > 0 and r.bytes > 0


@pytest.mark.parametrize(("rtype", "expect", "answer"), [
    ("AAAA", "{contains: ['::1']}", "::1"),
    ("TXT", "{matches: 'spf1'}", '"v=spf1 -all"'),
    ("MX", "{contains: [mail.shop.test]}", "10 mail.shop.test."),
    ("CNAME", "{contains: [shop.test]}", "shop.test."),
    ("SRV", "{matches: '8443'}", "0 5 8443 shop.test."),
])
async def test_record_types(server: str, rtype: str, expect: str, answer: str) -> None:
    name = {"AAAA": "v6.shop.test", "CNAME": "www.shop.test", "SRV": "_api._tcp.shop.test"}.get(rtype, "shop.test")
    async with run_context() as ctx:
        r = await ask(ctx, f"dns: {{name: {name}, type: {rtype}, server: '{server}'}}\nexpect: {{answers: {expect}}}")
    assert r.outcome is Outcome.PASSED, r.error_message
    assert answer in r.text["answers"]


async def test_a_name_extracted_earlier_is_resolved(server: str) -> None:
    async with run_context({"host": "shop.test", "want": "127.0.0.1"}) as ctx:
        r = await ask(ctx, f"dns: {{name: '{{{{ host }}}}', server: '{server}'}}\n"
                           "expect: {answers: {contains: ['{{ want }}']}}")
    assert r.outcome is Outcome.PASSED, r.error_message


async def test_nxdomain_is_a_dns_failure_unless_expected(server: str) -> None:
    async with run_context() as ctx:
        r = await ask(ctx, f"dns: {{name: gone.test, server: '{server}'}}")
        expected = await ask(ctx, f"dns: {{name: gone.test, server: '{server}'}}\nexpect: {{rcode: nxdomain}}")
        refused = await ask(ctx, f"dns: {{name: elsewhere.example, server: '{server}'}}")
    assert failed(r, ErrorClass.DNS) == "gone.test A: rcode NXDOMAIN, expected NOERROR"
    assert r.text == {"rcode": "NXDOMAIN", "answers": ""} and r.metrics["answer_count"] == 0
    assert expected.outcome is Outcome.PASSED, expected.error_message
    # no upstream (--no-resolv): dnsmasq refuses names outside its zone
    assert failed(refused, ErrorClass.DNS) == "elsewhere.example A: rcode REFUSED, expected NOERROR"


async def test_an_answer_not_expected_is_an_assertion(server: str) -> None:
    async with run_context() as ctx:
        r = await ask(ctx, f"dns: {{name: shop.test, type: A, server: '{server}'}}\n"
                           "expect: {answers: {contains: [10.9.9.9]}}")
    assert "answers contain '10.9.9.9': not among 127.0.0.1" in failed(r, ErrorClass.ASSERTION)


async def test_min_answers_and_matches_fail_as_assertion(server: str) -> None:
    async with run_context() as ctx:
        r = await ask(ctx, f"dns: {{name: shop.test, type: TXT, server: '{server}'}}\n"
                           "expect: {min_answers: 2, answers: {matches: '^nothing'}}")
    assert failed(r, ErrorClass.ASSERTION) == "1 answers, expected at least 2 (+1 more)"


async def test_a_silent_udp_server_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        async with run_context() as ctx:
            r = await ask(ctx, f"dns: {{name: shop.test, server: '127.0.0.1:{port}'}}", timeout_s=0.3)
    assert f"timed out after 0.3s (waiting for 127.0.0.1:{port} over udp)" == failed(r, ErrorClass.TIMEOUT)


@pytest.mark.parametrize(("text", "message"), [
    ("dns: {name: x, type: PTR}", "DNS type 'PTR' is not supported"),
    ("dns: {name: x, server: 'host:'}", "'server' is 'host:', not HOST or HOST:PORT"),
    ("dns: {name: x, transport: quic}", "'transport' is 'quic'"),
    ("dns: {type: A}", "dns needs 'name'"),
    ("dns: {name: x}\nexpect: {rcode: NOPE}", "'rcode' is 'NOPE'"),
    ("dns: {name: x}\nexpect: {answers: {matches: '('}}", "bad regular expression"),
    ("dns: {name: x}\nexpect: {answers: {}}", "'expect.answers' has no condition"),
])
def test_config_mistakes_are_located(text: str, message: str) -> None:
    _, problems = parse_step("dns", text)
    assert any(message in str(p) and str(p).startswith("journeys.yaml:") for p in problems.items), \
        [str(p) for p in problems.items]
