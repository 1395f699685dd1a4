"""The http probe against real servers on 127.0.0.1: every error class, phases, cookies, templates."""

from __future__ import annotations

import asyncio
import time

import pytest

from probes.http.config import HttpKind, HttpSpec
from probes.http.probe import HttpProbe
from qos_agent.model import ErrorClass, Outcome, StepResult
from qos_agent.plugins.context import RunContext
from tests.support.faults import (
    STREAM_CHUNK,
    SelfSigned,
    closed_port,
    http_server,
    silent_server,
)
from tests.support.probe_ctx import make_step, parse_step, run_context, run_step


@pytest.fixture(scope="module")
def self_signed() -> SelfSigned:
    return SelfSigned()


def spec_of(text: str) -> HttpSpec:
    spec, problems = parse_step("http", text)
    assert not problems, [str(p) for p in problems.sorted()]
    assert isinstance(spec, HttpSpec)
    return spec


async def run(ctx: RunContext, text: str, timeout_s: float = 5.0,
              extract: tuple[tuple[str, str, str], ...] = ()) -> StepResult:
    probe = HttpProbe()
    try:
        return await run_step(probe, make_step(spec_of(text), timeout_s=timeout_s, extract=extract), ctx)
    finally:
        await probe.close()


def failed_with(result: StepResult, error: ErrorClass) -> str:
    assert result.outcome is Outcome.FAILED, result
    assert result.error is error, (result.error, result.error_message)
    assert result.error_message
    return result.error_message


# ---------------------------------------------------------------------------------------------
# Passing requests and their phases
# ---------------------------------------------------------------------------------------------


async def test_fresh_connection_has_every_phase() -> None:
    async with http_server(host="localhost") as srv, run_context({"base": srv.base}) as ctx:
        before = time.time_ns() // 1_000_000
        r = await run(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {status: 200}')
    assert r.outcome is Outcome.PASSED, r.error_message
    assert r.status_code == 200 and r.bytes > 50 and r.error is None
    assert r.url == srv.url("/ok")
    p = r.phases
    assert p["dns_ms"] > 0 and p["connect_ms"] > 0 and p["ttfb_ms"] > 0, p
    assert p["tls_ms"] == 0 and p["transfer_ms"] >= 0
    assert r.duration_ms >= p["dns_ms"] + p["connect_ms"] + p["ttfb_ms"]
    assert before <= r.start_ms <= before + 1000


async def test_reused_connection_reports_zero_for_dns_connect_tls(self_signed: SelfSigned) -> None:
    async with http_server("localhost", tls=self_signed) as srv, run_context({"base": srv.base}) as ctx:
        first = await run(ctx, 'http: {url: "{{ base }}/ok", verify_tls: false}')
        second = await run(ctx, 'http: {url: "{{ base }}/ok", verify_tls: false}')
    assert first.outcome is second.outcome is Outcome.PASSED
    assert first.phases["tls_ms"] > 0
    assert second.phases["dns_ms"] == second.phases["connect_ms"] == second.phases["tls_ms"] == 0
    assert second.phases["ttfb_ms"] > 0


async def test_https_splits_tls_from_connect(self_signed: SelfSigned) -> None:
    async with http_server("localhost", tls=self_signed) as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, 'http: {url: "{{ base }}/ok", verify_tls: false}')
    assert r.outcome is Outcome.PASSED, r.error_message
    p = r.phases
    assert p["dns_ms"] > 0 and p["connect_ms"] > 0 and p["tls_ms"] > 0 and p["ttfb_ms"] > 0, p
    assert p["dns_ms"] + p["connect_ms"] + p["tls_ms"] + p["ttfb_ms"] <= r.duration_ms


async def test_concurrent_runs_keep_their_own_timings(self_signed: SelfSigned) -> None:
    async with http_server("localhost") as plain, http_server("localhost", tls=self_signed) as tls:
        async def one(base: str) -> list[StepResult]:
            async with run_context({"base": base}) as ctx:
                return [await run(ctx, 'http: {url: "{{ base }}/ok", verify_tls: false}') for _ in range(3)]

        results = await asyncio.gather(*(one(plain.base) for _ in range(4)), *(one(tls.base) for _ in range(4)))
    for runs in results[:4]:
        assert all(r.outcome is Outcome.PASSED and r.phases["tls_ms"] == 0 for r in runs)
        assert runs[0].phases["connect_ms"] > 0
    for runs in results[4:]:
        assert all(r.outcome is Outcome.PASSED for r in runs)
        assert runs[0].phases["tls_ms"] > 0 and runs[1].phases["tls_ms"] == 0


class _PacedServer:
    """A raw HTTP/1.1 server on 127.0.0.1 with known pauses: it reads the whole request (body
    included), waits `before_headers`, sends the headers, waits `before_body`, sends the body.
    `/hop` redirects to `/end` (same connection, same pauses), so every phase has a known floor."""

    def __init__(self, before_headers: float, before_body: float) -> None:
        self.before_headers, self.before_body = before_headers, before_body
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                length = next((int(v) for k, _, v in (h.partition(": ") for h in lines[1:])
                               if k.lower() == "content-length"), 0)
                await reader.readexactly(length)
                await asyncio.sleep(self.before_headers)
                if lines[0].split()[1] == "/hop":
                    writer.write(b"HTTP/1.1 302 Found\r\nLocation: /end\r\nContent-Length: 0\r\n\r\n")
                    continue
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(self.before_body)
                writer.write(b"ok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_phases_follow_the_wire() -> None:
    """ttfb runs from the body's last byte to the headers, transfer from the headers to the body's
    end; an IP literal is not resolved; a redirect hop adds its own wait to ttfb."""
    async with _PacedServer(before_headers=0.15, before_body=0.1) as base, run_context({"base": base}) as ctx:
        posted = await run(ctx, 'http: {url: "{{ base }}/upload", method: POST, body: "' + "x" * 200_000 + '"}')
    assert posted.outcome is Outcome.PASSED, posted.error_message
    p = posted.phases
    assert p["dns_ms"] == 0 and p["connect_ms"] > 0 and p["tls_ms"] == 0, p
    assert 150 <= p["ttfb_ms"] < 400 and 100 <= p["transfer_ms"] < 400, p
    assert p["connect_ms"] + p["ttfb_ms"] + p["transfer_ms"] <= posted.duration_ms
    async with _PacedServer(before_headers=0.12, before_body=0) as base, run_context({"base": base}) as ctx:
        hopped = await run(ctx, 'http: {url: "{{ base }}/hop"}')
    assert hopped.outcome is Outcome.PASSED and hopped.url.endswith("/hop"), hopped.error_message
    assert 240 <= hopped.phases["ttfb_ms"] < 600 and hopped.phases["transfer_ms"] < 100, hopped.phases


# ---------------------------------------------------------------------------------------------
# Error classes, each against a real failing server
# ---------------------------------------------------------------------------------------------


async def test_invalid_host_is_dns() -> None:
    async with run_context() as ctx:
        r = await run(ctx, 'http: {url: "http://no-such-host.invalid/x"}')
    assert "no-such-host.invalid" in failed_with(r, ErrorClass.DNS)
    assert r.status_code is None


async def test_closed_port_is_connect() -> None:
    port = closed_port()
    async with run_context() as ctx:
        r = await run(ctx, f'http: {{url: "http://127.0.0.1:{port}/"}}')
    msg = failed_with(r, ErrorClass.CONNECT)
    assert f"127.0.0.1:{port}" in msg and "refused" in msg


async def test_self_signed_certificate_is_tls(self_signed: SelfSigned) -> None:
    async with http_server("localhost", tls=self_signed) as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, 'http: {url: "{{ base }}/ok"}')
        ok = await run(ctx, 'http: {url: "{{ base }}/ok", verify_tls: false}')
    assert "certificate" in failed_with(r, ErrorClass.TLS)
    assert ok.outcome is Outcome.PASSED and ok.status_code == 200


async def test_server_that_never_answers_is_timeout() -> None:
    async with silent_server() as port, run_context() as ctx:
        t0 = time.monotonic()
        r = await run(ctx, f'http: {{url: "http://127.0.0.1:{port}/"}}', timeout_s=0.3)
        elapsed = time.monotonic() - t0
    msg = failed_with(r, ErrorClass.TIMEOUT)
    assert "0.3s" in msg and "waiting for response" in msg
    assert 0.25 < elapsed < 2.0
    assert 250 < r.duration_ms < 2000


async def test_503_is_status() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        default = await run(ctx, 'http: {url: "{{ base }}/status/503"}')
        explicit = await run(ctx, 'http: {url: "{{ base }}/status/503"}\nexpect: {status: 200}')
        allowed = await run(ctx, 'http: {url: "{{ base }}/status/503"}\nexpect: {status: [200, 503]}')
    assert failed_with(default, ErrorClass.STATUS) == "HTTP 503, expected 2xx or 3xx"
    assert failed_with(explicit, ErrorClass.STATUS) == "HTTP 503, expected 200"
    assert default.status_code == 503
    assert allowed.outcome is Outcome.PASSED


async def test_an_unexpected_status_is_status_whatever_was_expected() -> None:
    """Issue 27: one rule for error classes. 200 where 201 was due was `assertion`, 503 where 200 was
    due `status`: both are now `status` (assertion is for what the body and headers say)."""
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {status: [201, 204]}')
    assert failed_with(r, ErrorClass.STATUS) == "HTTP 200, expected one of 201, 204"


async def test_slow_answer_fails_latency() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        slow = await run(ctx, 'http: {url: "{{ base }}/slow?ms=150"}\nexpect: {latency: 50ms}')
        fast = await run(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {latency: 2s}')
    msg = failed_with(slow, ErrorClass.ASSERTION)
    assert msg.startswith("latency ") and "expected under 50ms" in msg
    assert fast.outcome is Outcome.PASSED


@pytest.mark.parametrize(("conditions", "message"), [
    ('"$.nope": {exists: true}', "$.nope exists: expected true, got missing"),
    ('"$.token": {exists: false}', "$.token exists: expected false, got 'abc123'"),
    ('"$.name": {equals: alice}', "$.name equals 'alice': got 'bob'"),
    ('"$.tags": {contains: z}', "$.tags contains 'z': got [\"a\",\"b\"]"),
    ('"$.token": {contains: xyz}', "$.token contains 'xyz': got 'abc123'"),
    ('"$.token": {matches: "^[0-9]+$"}', "$.token matches '^[0-9]+$': got 'abc123'"),
    ('"$.count": {lt: 5}', "$.count lt 5: got 7"),
    ('"$.count": {gt: 10}', "$.count gt 10: got 7"),
    ('"$.name": {gt: 10}', "$.name gt 10: got 'bob' (not a number)"),
    ('"$.items[*].id": {contains: 3}', "$.items[*].id contains 3: got [1,2]"),
    ('"$.nope": {equals: 1}', "$.nope equals 1: got missing"),
])
async def test_each_json_condition_fails_with_what_it_saw(conditions: str, message: str) -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, f'http: {{url: "{{{{ base }}}}/ok"}}\nexpect: {{json: {{{conditions}}}}}')
    assert failed_with(r, ErrorClass.ASSERTION) == message


async def test_json_conditions_that_hold_pass_and_templates_render_per_run() -> None:
    text = """
http: {url: "{{ base }}/ok"}
expect:
  json:
    "$.token": {exists: true, equals: "{{ tok }}", contains: "c12", matches: "^abc"}
    "$.user_id": {equals: "{{ uid }}", gt: 41, lt: 43}
    "$.items[*].id": {contains: 2}
    "$.tags": {contains: a}
    "$.nope": {exists: false}
"""
    async with http_server() as srv, run_context({"base": srv.base, "tok": "abc123", "uid": "42"}) as ctx:
        r = await run(ctx, text)
    assert r.outcome is Outcome.PASSED, r.error_message


async def test_several_failures_name_the_first_and_count_the_rest() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, 'http: {url: "{{ base }}/ok"}\n'
                           'expect: {body_contains: nothing-here, json: {"$.count": {lt: 1, gt: 100}}}')
    assert failed_with(r, ErrorClass.ASSERTION).endswith("(+2 more)")


async def test_body_contains() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        bad = await run(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {body_contains: [token, zebra]}')
        good = await run(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {body_contains: abc123}')
        not_json = await run(ctx, 'http: {url: "{{ base }}/html"}\nexpect: {json: {"$.a": {exists: true}}}')
    assert failed_with(bad, ErrorClass.ASSERTION).startswith("body_contains 'zebra': not found")
    assert good.outcome is Outcome.PASSED
    assert failed_with(not_json, ErrorClass.ASSERTION) == "expect.json: body is not JSON"


@pytest.mark.parametrize(("condition", "message"), [
    ("x-trace: t-43", "header x-trace equals 't-43': got 't-42'"),
    ("Content-Type: {contains: html}", "header Content-Type contains 'html': got 'application/json"),
    ("x-trace: {matches: '^u-'}", "header x-trace matches '^u-': got 't-42'"),
    ("x-missing: {exists: true}", "header x-missing exists: expected true, got missing"),
    ("x-trace: {exists: false}", "header x-trace exists: expected false, got 't-42'"),
])
async def test_each_header_condition_fails(condition: str, message: str) -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, f'http: {{url: "{{{{ base }}}}/ok"}}\nexpect: {{headers: {{{condition}}}}}')
        ok = await run(ctx, 'http: {url: "{{ base }}/ok"}\n'
                            'expect: {headers: {X-TRACE: t-42, content-type: {contains: json, matches: "^app"}}}')
    assert failed_with(r, ErrorClass.ASSERTION).startswith(message)
    assert ok.outcome is Outcome.PASSED, ok.error_message


async def test_endless_body_is_too_large() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        t0 = time.monotonic()
        r = await run(ctx, 'http: {url: "{{ base }}/stream", max_body: 64KiB}')
        elapsed = time.monotonic() - t0
    assert "65536" in failed_with(r, ErrorClass.TOO_LARGE)
    assert 65536 < r.bytes <= 65536 + 4 * len(STREAM_CHUNK) * 4
    assert elapsed < 2.0 and r.status_code == 200


async def test_redirects() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        loop = await run(ctx, 'http: {url: "{{ base }}/loop"}')
        two = await run(ctx, 'http: {url: "{{ base }}/redirect/2", max_redirects: 2}\nexpect: {body_contains: arrived}')
        three = await run(ctx, 'http: {url: "{{ base }}/redirect/3", max_redirects: 2}')
        stay = await run(ctx, 'http: {url: "{{ base }}/redirect/3", follow_redirects: false}')
        zero = await run(ctx, 'http: {url: "{{ base }}/redirect/3", max_redirects: 0}\nexpect: {status: 302}')
    assert "too many redirects" in failed_with(loop, ErrorClass.REDIRECTS)
    assert loop.status_code == 302
    assert two.outcome is Outcome.PASSED and two.status_code == 200, two.error_message
    failed_with(three, ErrorClass.REDIRECTS)
    assert stay.outcome is Outcome.PASSED and stay.status_code == 302
    assert zero.outcome is Outcome.PASSED and zero.status_code == 302


async def test_unrenderable_url_is_internal_and_never_raises() -> None:
    async with run_context({"host": "[broken"}) as ctx:
        r = await run(ctx, 'http: {url: "http://{{ host }}/"}')
    failed_with(r, ErrorClass.INTERNAL)


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


async def test_extraction_of_each_kind() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        json_r = await run(ctx, 'http: {url: "{{ base }}/ok"}',
                           extract=(("token", "json", "$.token"), ("uid", "json", "$.user_id"),
                                    ("trace", "header", "X-Trace")))
        regex_r = await run(ctx, 'http: {url: "{{ base }}/html"}',
                            extract=(("csrf", "regex", 'value="([^"]+)"'), ("whole", "regex", "tok-[0-9a-f]+")))
        cookie_r = await run(ctx, 'http: {url: "{{ base }}/cookie"}', extract=(("sid", "cookie", "session"),))
    assert json_r.extracted == {"token": "abc123", "uid": "42", "trace": "t-42"}
    assert regex_r.extracted == {"csrf": "tok-9f8e", "whole": "tok-9f8e"}
    assert cookie_r.extracted == {"sid": "sess-77"}


@pytest.mark.parametrize(("path", "extraction", "message"), [
    ("/ok", ("t", "json", "$.nope"), "extract t (json '$.nope'): no value at that path"),
    ("/html", ("t", "json", "$.a"), "extract t (json '$.a'): body is not JSON"),
    ("/ok", ("t", "header", "X-Nope"), "extract t (header 'X-Nope'): header missing"),
    ("/ok", ("t", "regex", "zebra=(\\d+)"), "extract t (regex 'zebra=(\\d+)'): no match in the body"),
    ("/ok", ("t", "cookie", "session"), "extract t (cookie 'session'): no such cookie after the step"),
])
async def test_extraction_failures_are_extract(path: str, extraction: tuple[str, str, str], message: str) -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, f'http: {{url: "{{{{ base }}}}{path}"}}', extract=(extraction,))
    assert failed_with(r, ErrorClass.EXTRACT) == message
    assert r.extracted == {}


async def test_expectations_are_checked_before_extraction() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        r = await run(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {body_contains: zebra}',
                      extract=(("t", "json", "$.nope"),))
    failed_with(r, ErrorClass.ASSERTION)


# ---------------------------------------------------------------------------------------------
# The conversation: cookies, headers, templates, secrets
# ---------------------------------------------------------------------------------------------


async def test_cookies_land_in_the_runs_jar_and_are_sent_back() -> None:
    async with http_server() as srv, run_context({"base": srv.base}) as ctx:
        await run(ctx, 'http: {url: "{{ base }}/cookie"}')
        assert {m.key: m.value for m in ctx.cookie_jar} == {"session": "sess-77"}
        await run(ctx, 'http: {url: "{{ base }}/ok"}')
    assert "session=sess-77" in srv.requests[-1]["headers"].get("Cookie", "")


async def test_default_headers_region_and_agent_are_sent() -> None:
    defaults = {"User-Agent": "qos-agent", "X-Default": "from-defaults", "X-Team": "{{ team }}"}
    async with http_server() as srv, \
            run_context({"base": srv.base, "team": "pay"}, headers=defaults, region="us-east", agent="a7") as ctx:
        r = await run(ctx, 'http: {url: "{{ base }}/ok", headers: {x-default: from-step}}')
    assert r.outcome is Outcome.PASSED
    sent = srv.requests[-1]["headers"]
    assert sent["User-Agent"] == "qos-agent" and sent["X-Team"] == "pay"
    assert sent["X-Default"] == "from-step"
    assert sent["X-QoS-Region"] == "us-east" and sent["X-QoS-Agent"] == "a7"


async def test_templates_render_in_url_params_headers_and_bodies() -> None:
    variables = {"base": "", "term": "shoes", "user": "demo", "tok": "t0k"}
    async with http_server() as srv, run_context(variables) as ctx:
        ctx.variables["base"] = srv.base
        json_r = await run(ctx, """
http:
  method: post
  url: "{{ base }}/echo"
  params: {q: "{{ term }}"}
  headers: {Authorization: "Bearer {{ tok }}"}
  json: {user: "{{ user }}", n: 1}
expect:
  json: {"$.method": {equals: POST}, "$.body": {contains: '"user": "demo"'}, "$.query.q": {equals: shoes}}
""")
        form_r = await run(ctx, 'http: {method: PUT, url: "{{ base }}/echo", form: {u: "{{ user }}"}}\n'
                                'expect: {json: {"$.body": {equals: u=demo}, '
                                '"$.content_type": {equals: application/x-www-form-urlencoded}}}')
        body_r = await run(ctx, 'http: {method: POST, url: "{{ base }}/echo", body: "raw {{ user }}"}\n'
                                'expect: {json: {"$.body": {equals: raw demo}}}')
    assert json_r.outcome is Outcome.PASSED, json_r.error_message
    assert json_r.url == srv.url("/echo?q=shoes")
    assert srv.requests[0]["headers"]["Authorization"] == "Bearer t0k"
    assert form_r.outcome is Outcome.PASSED, form_r.error_message
    assert body_r.outcome is Outcome.PASSED, body_r.error_message


async def test_secrets_never_reach_the_result() -> None:
    secrets = ["hostsecret42", "querysecret99"]
    async with run_context({"h": "hostsecret42", "k": "querysecret99"}, secrets=secrets) as ctx:
        r = await run(ctx, 'http: {url: "http://{{ h }}.invalid/x", params: {key: "{{ k }}"}}')
    msg = failed_with(r, ErrorClass.DNS)
    for s in secrets:
        assert s not in msg and s not in r.url
    assert "***" in msg and "key=***" in r.url


async def test_secret_in_a_failing_expectation_is_masked() -> None:
    async with http_server() as srv, run_context({"base": srv.base, "tok": "abc123"}, secrets=["abc123"]) as ctx:
        r = await run(ctx, 'http: {url: "{{ base }}/ok"}\nexpect: {json: {"$.token": {equals: other}}}')
    assert failed_with(r, ErrorClass.ASSERTION) == "$.token equals 'other': got '***'"


# ---------------------------------------------------------------------------------------------
# Configuration: located problems
# ---------------------------------------------------------------------------------------------


def problems_of(text: str) -> list[str]:
    _, problems = parse_step("http", text)
    return [str(p) for p in problems.sorted()]


def test_full_config_parses_without_touching_templates() -> None:
    spec = spec_of("""
name: login
http:
  method: post
  url: "{{ base }}/api/login"
  headers: {X-A: "{{ a }}"}
  params: {p: 1}
  json: {user: demo, password: "{{ pw }}"}
  verify_tls: false
  max_redirects: 3
  follow_redirects: true
  max_body: 512KiB
expect:
  status: [200, 204]
  latency: 800ms
  json: {"$.token": {exists: true}}
  body_contains: token
  headers: {content-type: {contains: json}}
""")
    assert spec.method == "POST" and spec.url == "{{ base }}/api/login"
    assert spec.headers == (("X-A", "{{ a }}"),) and spec.params == (("p", "1"),)
    assert spec.json == {"user": "demo", "password": "{{ pw }}"} and spec.has_json
    assert (spec.verify_tls, spec.max_redirects, spec.max_body) == (False, 3, 512 * 1024)
    assert spec.expect.status == (200, 204) and spec.expect.latency_s == 0.8
    assert spec.expect.body_contains == ("token",) and len(spec.expect.json) == 1
    assert HttpKind.provides(spec) == set()


@pytest.mark.parametrize(("text", "expected"), [
    ('http: {url: "http://x", method: GTE}',
     "journeys.yaml:1:33: unknown HTTP method 'GTE' (did you mean 'GET'?)"),
    ('http: {url: "http://x"}\nexpect: {json: {"$.[": {exists: true}}}',
     "journeys.yaml:2:17: bad JSONPath '$.[': "),
    ('http: {url: "http://x"}\nexpect: {json: {"$.a": {matches: "(unclosed"}}}',
     "journeys.yaml:2:34: expect.json '$.a': bad regular expression '(unclosed'"),
    ('http: {url: "http://x"}\nexpect: {headers: {x-a: {matches: "[z-a]"}}}',
     "journeys.yaml:2:35: expect.headers 'x-a': bad regular expression '[z-a]'"),
    ('http: {url: "http://x", heders: {a: b}}',
     "journeys.yaml:1:25: unknown key 'heders' in http (did you mean 'headers'?)"),
    ('http: {url: "http://x"}\nexpect: {stauts: 200}',
     "journeys.yaml:2:10: unknown key 'stauts' in expect (did you mean 'status'?)"),
    ('http: {url: "http://x"}\nexpect: {json: {"$.a": {exist: true}}}',
     "journeys.yaml:2:25: unknown key 'exist' in expect.json '$.a' (did you mean 'exists'?)"),
    ('http: {url: "ftp://x/y"}', "journeys.yaml:1:13: 'url' must start with http:// or https://"),
    ('http: {url: "example.com/y"}', "journeys.yaml:1:13: 'url' must start with http:// or https://"),
    ('http: {url: "http://"}', "journeys.yaml:1:13: 'url' is not a valid URL"),
    ("http: {method: GET}", "journeys.yaml:1:7: http needs 'url'"),
    ('http: {url: "http://x", max_body: lots}', "journeys.yaml:1:35: 'max_body' is not a size"),
    ('http: {url: "http://x", json: {}, body: x}', "journeys.yaml:1:35: 'http' has both 'json' and 'body'"),
    ('http: {url: "http://x"}\nexpect: {status: 999}', "journeys.yaml:2:18: 'expect.status' must be a status code"),
    ('http: {url: "http://x"}\nexpect: {latency: fast}', "journeys.yaml:2:19: 'latency' is not a duration"),
    ('http: {url: "http://x"}\nexpect: {json: {"$.a": {lt: ten}}}', "journeys.yaml:2:29: expect.json '$.a': 'lt'"),
])
def test_config_problems_are_located(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of('http: {url: "ftp://x", method: FETCH, max_redirects: -1}\n'
                           'expect: {json: {"$.[": {}}, headers: {a: {matches: "("}}}')
    assert len(problems) == 5, problems


def test_size_units() -> None:
    from probes.http.config import parse_size

    assert parse_size("10MiB") == 10 * 1024 * 1024 and parse_size("512KiB") == 524288
    assert parse_size(1000) == 1000 and parse_size("1MB") == 1_000_000 and parse_size("2 kb") == 2000
    assert parse_size("0") is None and parse_size(True) is None and parse_size("ten") is None
