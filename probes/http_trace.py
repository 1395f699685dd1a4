"""Phase timing of one HTTP request: dns, connect, tls, ttfb, transfer (perf_counter_ns).

aiohttp's `TraceConfig` reports DNS start/end, connection create start/end, request headers sent,
redirects and the response's headers (request end), but it opens the TCP connection and does the
TLS handshake in one `loop.create_connection(..., ssl=ctx)` call, so no trace signal separates them.

How tls is split from connect: the probe passes its own `ssl.SSLContext` (verified or not) on every
https request, a subclass whose `wrap_bio` marks the moment. asyncio's SSL protocol calls
`context.wrap_bio(...)` when it is built, which is right after the TCP connection is established
and just before the first handshake message, so that call marks "TCP connected, TLS starts"
(public `ssl` API only; no aiohttp internals). `wrap_bio` gets no request, so the trace of the
request being made is found through a `ContextVar` the probe sets around the request: the SSL
protocol is built inside the task making the request, so concurrent runs (separate tasks) never see
each other's trace. Thus:

    dns_ms      = dns resolve end - start                       (0 for an IP literal)
    connect_ms  = handshake start (https) or connection created (http) - dns end / create start
    tls_ms      = connection created - handshake start          (https only)
    ttfb_ms     = response headers - request sent (headers, or the last body chunk written)
    transfer_ms = body read - response headers                  (the final response)

Every phase is summed over redirect hops, like blackbox_exporter; a pooled connection reused in the
same run creates nothing, so its dns/connect/tls are 0. The trace object rides on aiohttp's
`trace_request_ctx`, so each request has its own state.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import aiohttp

CURRENT: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar("qos_http_trace", default=None)


def _now() -> int:
    return time.perf_counter_ns()


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


@dataclass(slots=True)
class RequestTrace:
    """Timings of one `session.request` (all its redirect hops) plus the stage it reached."""

    dns_ns: int = 0
    connect_ns: int = 0
    tls_ns: int = 0
    ttfb_ns: int = 0
    transfer_ns: int = 0
    stage: str = "starting"
    redirects: int = 0
    connections: int = 0
    _conn_start: int | None = None  # set while a connection is being created
    _dns_start: int | None = None
    _connect_from: int | None = None  # dns end, or creation start when there was no lookup
    _tls_start: int | None = None
    _sent: int | None = None
    _response_at: int | None = None

    # ----- events ------------------------------------------------------------------------------
    def connection_start(self) -> None:
        now = _now()
        self._conn_start = self._connect_from = now
        self._dns_start = self._tls_start = None
        self.stage = "connect"

    def dns_start(self) -> None:
        self._dns_start = _now()
        self.stage = "dns"

    def dns_end(self) -> None:
        now = _now()
        if self._dns_start is not None:
            self.dns_ns += now - self._dns_start
        self._connect_from = now
        self.stage = "connect"

    def tls_start(self) -> None:
        """The TLS layer of a connection this trace is creating was just built: TCP is up."""
        if self._conn_start is None or self._tls_start is not None:
            return
        now = _now()
        self._tls_start = now
        self.connect_ns += now - (self._connect_from or now)
        self.stage = "tls"

    def connection_end(self) -> None:
        now = _now()
        if self._tls_start is not None:
            self.tls_ns += now - self._tls_start
        else:
            self.connect_ns += now - (self._connect_from or now)
        self._conn_start = self._tls_start = None
        self.connections += 1
        self.stage = "send"

    def headers_sent(self) -> None:
        self._sent = _now()
        self.stage = "waiting for response"

    def chunk_sent(self) -> None:
        """A body chunk written before the response: the request is sent when the last one is."""
        if self._sent is not None:
            self._sent = _now()

    def response(self, redirect: bool) -> None:
        now = _now()
        if self._sent is not None:
            self.ttfb_ns += now - self._sent
        self._sent = None
        self._response_at = now
        if redirect:
            self.redirects += 1
            self.stage = "redirect"
        else:
            self.stage = "reading body"

    def body_read(self) -> None:
        if self._response_at is not None:
            self.transfer_ns = _now() - self._response_at

    def phases(self) -> dict[str, float]:
        return {
            "dns_ms": _ms(self.dns_ns),
            "connect_ms": _ms(self.connect_ns),
            "tls_ms": _ms(self.tls_ns),
            "ttfb_ms": _ms(self.ttfb_ns),
            "transfer_ms": _ms(self.transfer_ns),
        }


def _trace(ctx: SimpleNamespace) -> RequestTrace | None:
    t = getattr(ctx, "trace_request_ctx", None)
    return t if isinstance(t, RequestTrace) else None


async def _on_conn_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.connection_start()


async def _on_conn_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.connection_end()


async def _on_dns_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.dns_start()


async def _on_dns_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.dns_end()


async def _on_headers_sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.headers_sent()


async def _on_chunk_sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.chunk_sent()


async def _on_redirect(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.response(redirect=True)


async def _on_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (t := _trace(ctx)) is not None:
        t.response(redirect=False)


@cache
def trace_config() -> aiohttp.TraceConfig:
    """The TraceConfig feeding the `RequestTrace` passed as `trace_request_ctx`: one per agent, shared by
    every run's session (its state is per request), since making one builds ~16 signal lists — about
    a tenth of a run's set-up CPU in bench_throughput's profile."""
    tc = aiohttp.TraceConfig()
    tc.on_connection_create_start.append(_on_conn_start)
    tc.on_connection_create_end.append(_on_conn_end)
    tc.on_dns_resolvehost_start.append(_on_dns_start)
    tc.on_dns_resolvehost_end.append(_on_dns_end)
    tc.on_request_headers_sent.append(_on_headers_sent)
    tc.on_request_chunk_sent.append(_on_chunk_sent)
    tc.on_request_redirect.append(_on_redirect)
    tc.on_request_end.append(_on_end)
    return tc


class _TimedContext(ssl.SSLContext):
    """Marks the start of the TLS handshake on the trace of the request that opened the socket."""

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None,
                 session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        trace = CURRENT.get()
        if trace is not None:
            trace.tls_start()
        return super().wrap_bio(incoming, outgoing, server_side=server_side,
                                server_hostname=server_hostname, session=session)


@cache
def ssl_context(verify: bool) -> ssl.SSLContext:
    """One context per agent for each mode (what `ssl.create_default_context` makes, timed)."""
    ctx = _TimedContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
