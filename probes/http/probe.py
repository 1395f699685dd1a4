"""The `http` step: one request (following redirects) measured the way the customer feels it.

Each journey run gets its own aiohttp session over a fresh connector without a DNS cache (like
blackbox_exporter), so the run's first request really resolves, connects and handshakes; later steps
of the same run reuse the connection, as a browser would. Phase times come from `http_trace`.
The core's wrapper (`measured`) classifies every failure (aiohttp's through `http_errors`); the
core extracts from what the step yields and masks the result.
"""

from __future__ import annotations

import codecs
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, ClassVar

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from probes.common.assertions import check_headers, check_json
from probes.common.http_errors import BodyTooLarge, classify
from probes.common.http_trace import CURRENT, RequestTrace, ssl_context, timed_session
from probes.common.netopts import connector_for, context_for, env_names_a_proxy, session_key
from probes.common.netspec import NetSpec, render_net
from probes.common.tls_facts import check_days_left, facts_of_response
from probes.http.config import HttpSpec
from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Step, StepResult, Yielded
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe
from qos_agent.steps.jsondoc import MISSING, parse_json_body
from qos_agent.steps.measure import latency_failure, measured

CHUNK = 64 * 1024
SESSION_KEY = "http"
EXCERPT_SOURCE = 2048  # characters kept of a failed step's body, before masking cuts it to the excerpt


NO_TIMEOUT = aiohttp.ClientTimeout(total=None)  # one timeout scope per request: the probe's asyncio.timeout


def session_maker(ctx: RunContext, net: NetSpec, trust_env: bool
                  ) -> Callable[[], Awaitable[tuple[aiohttp.ClientSession, Callable[[], Awaitable[None]]]]]:
    """Makes the run's session: fresh connections, no DNS cache, the run's cookie jar, our trace;
    HTTP(S)_PROXY/NO_PROXY honoured when the environment names a proxy (`trust_env`, read once per
    agent); `ip_version`/`resolve` shape the connector."""

    async def make() -> tuple[aiohttp.ClientSession, Callable[[], Awaitable[None]]]:
        session = timed_session(connector_for(net), cookie_jar=ctx.cookie_jar, timeout=NO_TIMEOUT,
                                trust_env=trust_env)
        return session, session.close

    return make


def _status_failure(spec: HttpSpec, status: int) -> StepFailure | None:
    expected = spec.expect.status
    if expected:
        if status in expected:
            return None
        want = str(expected[0]) if len(expected) == 1 else "one of " + ", ".join(map(str, expected))
        # One rule (issue 27): an unexpected status is `status`, whatever was expected (200 where 201
        # was due as much as 503 where 200 was); `assertion` is for what the body and headers say.
        return StepFailure(ErrorClass.STATUS, f"HTTP {status}, expected {want}")
    if 200 <= status < 400:
        return None
    return StepFailure(ErrorClass.STATUS, f"HTTP {status}, expected 2xx or 3xx")


class HttpProbe(Probe):
    bounds_own_wait: ClassVar[bool] = True  # every wait is inside the wrapper's asyncio.timeout(step.timeout_s)

    def __init__(self) -> None:
        # Load the CA store now, once per agent, so no run's duration pays for it.
        ssl_context(True)
        ssl_context(False)
        # Read once per agent, not per run (scanning the environment cost ~40 µs a step).
        self.trust_env = env_names_a_proxy()

    async def close(self) -> None:
        """Nothing agent-wide to release: sessions belong to runs and close with them."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: HttpSpec = step.spec
        trace = RequestTrace()

        async def body(result: StepResult) -> None:
            try:
                await self._request(step, spec, ctx, trace, result)
            except aiohttp.TooManyRedirects as exc:
                if exc.history:
                    result.status_code = exc.history[-1].status
                raise
            finally:
                result.phases = trace.phases()

        return await measured(step, "http", body, lambda: trace.stage,
                              lambda exc: classify(exc, trace.stage, step.timeout_s))

    async def _request(self, step: Step, spec: HttpSpec, ctx: RunContext, trace: RequestTrace,
                       result: StepResult) -> None:
        t0 = time.perf_counter_ns()
        url = _url(ctx.render(spec.url))
        if spec.params:
            url = url.extend_query({k: ctx.render(v) for k, v in spec.params})
        result.url = str(url)
        result.text["http_method"] = spec.method  # http.request.method of its span (OTLP)
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in (*ctx.journey.headers, *spec.headers):
            headers[name] = ctx.render(value)  # (the core learns the secrets of what it sends: Sends)
        headers["X-QoS-Region"] = ctx.region
        headers["X-QoS-Agent"] = ctx.agent
        if (traceparent := ctx.traceparent_header()) is not None and "traceparent" not in headers:
            headers["traceparent"] = traceparent  # W3C Trace Context: the backend joins this run's trace
        body: dict[str, Any] = {}
        if spec.has_json:
            body["json"] = ctx.render_deep(spec.json)
        elif spec.body is not None:
            body["data"] = ctx.render(spec.body)
        elif spec.form is not None:
            body["data"] = {k: ctx.render(v) for k, v in spec.form}
        follow = spec.follow_redirects and spec.max_redirects > 0

        net = render_net(spec.net, ctx.render)
        key = session_key(net)
        session = ctx.peek(key) or await ctx.resource(key, session_maker(ctx, net, self.trust_env))
        try:
            tls = context_for(spec.verify_tls, net)
        except (OSError, ssl.SSLError) as exc:
            raise StepFailure(ErrorClass.TLS, f"cannot load client_cert/ca_file: {exc}") from None
        token = CURRENT.set(trace)
        try:
            async with session.request(
                spec.method, url, headers=headers, allow_redirects=follow,
                # aiohttp fails on the max_redirects-th redirect; we allow that many and fail after.
                # One timeout scope, the wrapper's asyncio.timeout(step.timeout_s) around the whole
                # step (qos_agent/steps/measure.py), not a second timer here nor aiohttp's per request.
                max_redirects=spec.max_redirects + 1, ssl=tls, proxy=net.proxy or None, **body,
            ) as resp:
                result.status_code = resp.status
                facts = facts_of_response(resp) if resp.url.scheme == "https" else None
                if facts is not None:
                    facts.apply(result)
                # A step that checks nothing in the body only counts it; an unexpected status keeps
                # it for the failure's excerpt (what the server said).
                keep = bool(spec.expect.body_contains or spec.expect.json or step.extract
                            or _status_failure(spec, resp.status) is not None)
                body_bytes = await _read_body(resp, result, spec.max_body, keep)
                trace.body_read()
                # Only what an expectation or an extraction reads is built.
                resp_headers = ({k.lower(): ", ".join(resp.headers.getall(k)) for k in resp.headers}
                                if spec.expect.headers or step.extract else {})
                final_url = resp.url
                text = body_bytes.decode(_charset(resp.charset), errors="replace") if keep else ""
                del body_bytes
        finally:
            CURRENT.reset(token)
        elapsed_s = (time.perf_counter_ns() - t0) / 1e9
        if (expiring := check_days_left(facts, spec.expect.cert_days_left)) is not None:
            raise StepFailure(ErrorClass.TLS, expiring)
        try:
            self._check(spec, ctx, result.status_code, text, resp_headers, elapsed_s)
        except StepFailure:
            result.body_excerpt = text[:EXCERPT_SOURCE]  # the core masks it, then cuts it short
            raise
        if step.extract:
            result.yielded = Yielded(body=text, headers=resp_headers, url=str(final_url))

    @staticmethod
    def _check(spec: HttpSpec, ctx: RunContext, status: int, text: str, headers: dict[str, str],
               elapsed_s: float) -> None:
        """Raise StepFailure for the first broken expectation (and how many more broke)."""
        if (failed := _status_failure(spec, status)) is not None:
            raise failed
        exp = spec.expect
        failures: list[str] = []
        if exp.latency_s is not None and elapsed_s > exp.latency_s:
            failures.append(latency_failure(elapsed_s, exp.latency_s))
        for needle in exp.body_contains:
            want = ctx.render(needle)
            if want not in text:
                failures.append(f"body_contains {quoted(want)}: not found in {len(text)} characters")
        failures += check_headers(exp.headers, headers, ctx.render_deep)
        if exp.json:
            doc = _lazy_json(text)()
            if doc is MISSING:
                failures.append("expect.json: body is not JSON")  # (too deep: check_json says so)
            else:
                failures += check_json(exp.json, doc, ctx.render_deep)
        if failures:
            more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
            raise StepFailure(ErrorClass.ASSERTION, failures[0] + more)


async def _read_body(resp: aiohttp.ClientResponse, result: StepResult, max_body: int, keep: bool
                     ) -> bytes | bytearray:
    """The body when `keep` (else b""), its size counted in `result.bytes` as it arrives (a step that
    fails as too large says how much came); never more than `max_body` held or read.

    One growing buffer, decoded once then dropped: peak memory about twice the body, not the 3x of a
    chunk list joined then decoded. A plain body whose declared length is within the limit is read in
    one call (the parser stops at that length); a compressed, chunked or undeclared one is counted
    chunk by chunk, so a hostile server cannot make the step hold more than the limit."""
    length = resp.content_length
    headers = resp.headers
    if (length is not None and length <= max_body and "Content-Encoding" not in headers
            and "Transfer-Encoding" not in headers):
        data = await resp.content.read()
        result.bytes = len(data)
        return data if keep else b""
    body = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK):
        result.bytes += len(chunk)
        if result.bytes > max_body:
            raise BodyTooLarge(max_body)
        if keep:
            body += chunk
    return body


@lru_cache(maxsize=1024)
def _url(text: str) -> URL:
    """A rendered URL, parsed once: most steps call the same URL run after run (URLs are immutable)."""
    return URL(text)


def _charset(name: str | None) -> str:
    """The response's charset if Python knows it, else UTF-8 (a hostile `charset=x` is not an error)."""
    try:
        return codecs.lookup(name or "utf-8").name
    except LookupError:
        return "utf-8"


def _lazy_json(text: str) -> Callable[[], Any]:
    """The body parsed as JSON on first use (MISSING when it is not JSON, TOO_DEEP when it nests too deep)."""
    cache: list[Any] = []

    def get() -> Any:
        if not cache:
            cache.append(parse_json_body(text))
        return cache[0]

    return get
