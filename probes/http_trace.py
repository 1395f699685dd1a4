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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import aiohttp

from probes.castore import trust_system

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


# aiohttp's trace signal -> what it means for the request's RequestTrace: one table, one callback factory.
_EVENTS: tuple[tuple[str, Callable[[RequestTrace], None]], ...] = (
    ("on_connection_create_start", RequestTrace.connection_start),
    ("on_connection_create_end", RequestTrace.connection_end),
    ("on_dns_resolvehost_start", RequestTrace.dns_start),
    ("on_dns_resolvehost_end", RequestTrace.dns_end),
    ("on_request_headers_sent", RequestTrace.headers_sent),
    ("on_request_chunk_sent", RequestTrace.chunk_sent),
    ("on_request_redirect", lambda t: t.response(redirect=True)),
    ("on_request_end", lambda t: t.response(redirect=False)),
)


def _callback(event: Callable[[RequestTrace], None]) -> Callable[[Any, SimpleNamespace, Any], Awaitable[None]]:
    async def on(_session: Any, ctx: SimpleNamespace, _params: Any) -> None:
        if (t := _trace(ctx)) is not None:
            event(t)

    return on


@cache
def trace_config(factory: Any = SimpleNamespace) -> aiohttp.TraceConfig:
    """A TraceConfig feeding the `RequestTrace` passed as `trace_request_ctx` (or set by `factory`:
    the websocket step's upgrade takes no trace_request_ctx). One per agent and factory, shared by
    every run's session (its state is per request), since making one builds ~16 signal lists — about
    a tenth of a run's set-up CPU in bench_throughput's profile."""
    tc = aiohttp.TraceConfig(trace_config_ctx_factory=factory)
    for signal, event in _EVENTS:
        getattr(tc, signal).append(_callback(event))
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
        trust_system(ctx)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
