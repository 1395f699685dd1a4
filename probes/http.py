"""The `http` step: one request (following redirects) measured the way the customer feels it.

Each journey run gets its own aiohttp session over a fresh connector without a DNS cache (like
blackbox_exporter), so the run's first request really resolves, connects and handshakes; later steps
of the same run reuse the connection, as a browser would. Phase times come from `http_trace`.
Every failure becomes a classified `StepResult` (`http_errors`); `run` never raises, except for
cancellation, which belongs to the caller.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from probes.assertions import MISSING, check_headers, check_json
from probes.http_config import HttpSpec, parse_http
from probes.http_errors import BodyTooLarge, classify
from probes.http_extract import ExtractError, extract_all
from probes.http_trace import CURRENT, RequestTrace, ssl_context, trace_config
from qos_agent.language.nodes import Node, Problems
from qos_agent.model import ErrorClass, Outcome, Step, StepResult
from qos_agent.plugins.protocols import LoadContext, RunContext

CHUNK = 64 * 1024
SESSION_KEY = "http"


class StepFailed(Exception):
    """A response arrived but the step's expectations or extractions say no."""

    def __init__(self, error: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error = error


def session_maker(ctx: RunContext) -> Callable[[], Awaitable[tuple[aiohttp.ClientSession,
                                                                   Callable[[], Awaitable[None]]]]]:
    """Makes the run's session: fresh connections, no DNS cache, the run's cookie jar, our trace."""

    async def make() -> tuple[aiohttp.ClientSession, Callable[[], Awaitable[None]]]:
        connector = aiohttp.TCPConnector(use_dns_cache=False, ttl_dns_cache=0)
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=ctx.cookie_jar,
            trace_configs=[trace_config()],
            auto_decompress=True,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return session, session.close

    return make


def _status_failure(spec: HttpSpec, status: int) -> StepFailed | None:
    expected = spec.expect.status
    if expected:
        if status in expected:
            return None
        want = str(expected[0]) if len(expected) == 1 else "one of " + ", ".join(map(str, expected))
        # The server answering an error is a status failure; a success the step did not expect
        # (200 where 201 was due) is a broken contract: an assertion.
        error = ErrorClass.ASSERTION if 200 <= status < 400 else ErrorClass.STATUS
        return StepFailed(error, f"HTTP {status}, expected {want}")
    if 200 <= status < 400:
        return None
    return StepFailed(ErrorClass.STATUS, f"HTTP {status}, expected 2xx or 3xx")


class HttpProbe:
    kind: ClassVar[str] = "http"
    step_keys: ClassVar[frozenset[str]] = frozenset({"expect"})

    def __init__(self) -> None:
        # Load the CA store now, once per agent, so no run's duration pays for it.
        ssl_context(True)
        ssl_context(False)

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> HttpSpec:
        return parse_http(step, problems)

    @classmethod
    def provides(cls, spec: Any) -> set[str]:
        return set()

    async def close(self) -> None:
        """Nothing agent-wide to release: sessions belong to runs and close with them."""

    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        spec: HttpSpec = step.spec
        result = StepResult(step=step.name, probe=self.kind, outcome=Outcome.PASSED,
                            start_ms=time.time_ns() // 1_000_000)
        trace = RequestTrace()
        t0 = time.perf_counter_ns()
        try:
            await self._request(step, spec, ctx, trace, result, t0)
        except StepFailed as exc:
            result.outcome, result.error, result.error_message = Outcome.FAILED, exc.error, str(exc)
        except Exception as exc:
            result.outcome = Outcome.FAILED
            result.error, result.error_message = classify(exc, trace.stage, step.timeout_s)
            if isinstance(exc, aiohttp.TooManyRedirects) and exc.history:
                result.status_code = exc.history[-1].status
        result.duration_ms = round((time.perf_counter_ns() - t0) / 1e6, 3)
        result.phases = trace.phases()
        result.error_message = ctx.redact(result.error_message)
        result.url = ctx.redact(result.url)
        return result

    async def _request(self, step: Step, spec: HttpSpec, ctx: RunContext, trace: RequestTrace,
                       result: StepResult, t0: int) -> None:
        url = URL(ctx.render(spec.url))
        if spec.params:
            url = url.extend_query({k: ctx.render(v) for k, v in spec.params})
        result.url = str(url)
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in (*ctx.journey.headers, *spec.headers):
            headers[name] = ctx.render(value)
        headers["X-QoS-Region"] = ctx.region
        headers["X-QoS-Agent"] = ctx.agent
        body: dict[str, Any] = {}
        if spec.has_json:
            body["json"] = ctx.render_deep(spec.json)
        elif spec.body is not None:
            body["data"] = ctx.render(spec.body)
        elif spec.form is not None:
            body["data"] = {k: ctx.render(v) for k, v in spec.form}
        follow = spec.follow_redirects and spec.max_redirects > 0

        session = await ctx.resource(SESSION_KEY, session_maker(ctx))
        token = CURRENT.set(trace)
        try:
            async with asyncio.timeout(step.timeout_s), session.request(
                spec.method, url, headers=headers, allow_redirects=follow,
                # aiohttp fails on the max_redirects-th redirect; we allow that many and fail after.
                # One timeout scope (the asyncio.timeout above), not a second aiohttp timer per request.
                max_redirects=spec.max_redirects + 1, ssl=ssl_context(spec.verify_tls),
                trace_request_ctx=trace, **body,
            ) as resp:
                result.status_code = resp.status
                chunks = []
                async for chunk in resp.content.iter_chunked(CHUNK):
                    result.bytes += len(chunk)
                    if result.bytes > spec.max_body:
                        raise BodyTooLarge(spec.max_body)
                    chunks.append(chunk)
                trace.body_read()
                resp_headers = {k.lower(): ", ".join(resp.headers.getall(k)) for k in resp.headers}
                final_url = resp.url
                text = b"".join(chunks).decode(resp.charset or "utf-8", errors="replace")
        finally:
            CURRENT.reset(token)
        elapsed_s = (time.perf_counter_ns() - t0) / 1e9
        self._check(spec, ctx, result.status_code, text, resp_headers, elapsed_s)
        if step.extract:
            try:
                result.extracted = extract_all(step.extract, text=text, json_doc=_lazy_json(text),
                                               headers=resp_headers, jar=ctx.cookie_jar, url=final_url)
            except ExtractError as exc:
                raise StepFailed(ErrorClass.EXTRACT, str(exc)) from None

    @staticmethod
    def _check(spec: HttpSpec, ctx: RunContext, status: int, text: str, headers: dict[str, str],
               elapsed_s: float) -> None:
        """Raise StepFailed for the first broken expectation (and how many more broke)."""
        if (failed := _status_failure(spec, status)) is not None:
            raise failed
        exp = spec.expect
        failures: list[str] = []
        if exp.latency_s is not None and elapsed_s > exp.latency_s:
            failures.append(f"latency {elapsed_s * 1000:.0f}ms, expected under {exp.latency_s * 1000:.0f}ms")
        for needle in exp.body_contains:
            want = ctx.render(needle)
            if want not in text:
                failures.append(f"body_contains {want!r}: not found in {len(text)} characters")
        failures += check_headers(exp.headers, headers, ctx.render_deep)
        if exp.json:
            doc = _lazy_json(text)()
            if doc is MISSING:
                failures.append("expect.json: body is not JSON")
            else:
                failures += check_json(exp.json, doc, ctx.render_deep)
        if failures:
            more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
            raise StepFailed(ErrorClass.ASSERTION, failures[0] + more)


def _lazy_json(text: str) -> Callable[[], Any]:
    """The body parsed as JSON on first use (MISSING when it is not JSON)."""
    cache: list[Any] = []

    def get() -> Any:
        if not cache:
            try:
                cache.append(json.loads(text))
            except ValueError:
                cache.append(MISSING)
        return cache[0]

    return get
