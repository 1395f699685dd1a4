"""Phase timing of one HTTP request: dns, connect, tls, ttfb, transfer (perf_counter_ns).

Marked by small hooks on public aiohttp extension points rather than its `TraceConfig` signals (which
build a params object and await a signal per event: ~8 % of a step's instructions, docs/benchmarks.md):

    dns start/end     `TimedResolver` around the connector's resolver (an IP literal is not resolved)
    connect start     the connector's `socket_factory` (the socket about to connect), or the lookup's start
    tls start         the SSL context's `wrap_bio` (asyncio builds the TLS layer right after TCP is up)
    connection end    `TimedRequest.send` (the connector handed over the new connection)
    request sent      `TimedRequest.send` (headers written), or its `write_bytes` (the body's last byte)
    response          `TimedResponse.start` (status line and headers read)

How tls is split from connect: the probe passes its own `ssl.SSLContext` (verified or not) on every
https request, a subclass whose `wrap_bio` marks the moment; it gets no request, so the trace of the
request being made is found through a `ContextVar` the probe sets around the request. Every hook
runs inside the task making the request (or a task it started, which copies the context), so
concurrent runs never see each other's trace. Thus:

    dns_ms      = dns resolve end - start                       (0 for an IP literal)
    connect_ms  = handshake start (https) or connection handed over (http) - dns end / socket made
    tls_ms      = connection handed over - handshake start      (https only)
    ttfb_ms     = response headers - request sent (headers, or the body's last byte written)
    transfer_ms = body read - response headers                  (the final response)

Every phase is summed over redirect hops, like blackbox_exporter; a pooled connection reused in the
same run creates nothing, so its dns/connect/tls are 0.
"""

from __future__ import annotations

import contextvars
import socket
import ssl
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from probes.common.castore import trust_system

CURRENT: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar("qos_http_trace", default=None)


_now = time.perf_counter_ns  # called several times a step: the builtin itself, no wrapper frame


@dataclass(slots=True)
class RequestTrace:
    """Timings of one `session.request` (all its redirect hops) plus the stage it reached."""

    dns_ns: int = 0
    connect_ns: int = 0
    tls_ns: int = 0
    ttfb_ns: int = 0
    transfer_ns: int = 0
    stage: str = "starting"
    _conn_start: int | None = None  # set while a connection is being created
    _dns_start: int | None = None
    _connect_from: int | None = None  # dns end, or when the socket was made when there was no lookup
    _tls_start: int | None = None
    _sent: int | None = None
    _response_at: int | None = None

    # ----- events ------------------------------------------------------------------------------
    def _begin_connection(self, now: int) -> None:
        self._conn_start = self._connect_from = now
        self._dns_start = self._tls_start = None
        self.stage = "connect"

    def dns_start(self) -> None:
        now = _now()
        if self._conn_start is None:  # the lookup is the first thing a new connection does
            self._begin_connection(now)
        self._dns_start = now
        self.stage = "dns"

    def dns_end(self) -> None:
        now = _now()
        if self._dns_start is not None:
            self.dns_ns += now - self._dns_start
        self._connect_from = now
        self.stage = "connect"

    def socket_made(self) -> None:
        """A socket is about to connect: a new connection (to an IP literal, no lookup came first)."""
        if self._conn_start is None:
            self._begin_connection(_now())

    def tls_start(self) -> None:
        """The TLS layer of a connection this trace is creating was just built: TCP is up."""
        if self._conn_start is None or self._tls_start is not None:
            return
        now = _now()
        self._tls_start = now
        self.connect_ns += now - (self._connect_from or now)
        self.stage = "tls"

    def request_sending(self) -> None:
        """The request is being written: on a new connection, that connection is now made."""
        now = _now()
        if self._conn_start is not None:
            if self._tls_start is not None:
                self.tls_ns += now - self._tls_start
            else:
                self.connect_ns += now - (self._connect_from or now)
            self._conn_start = self._tls_start = None
        self._sent = now
        self.stage = "waiting for response"

    def body_sent(self) -> None:
        """The request's body was written (after its headers): the request is sent now."""
        if self._sent is not None:
            self._sent = _now()

    def response(self) -> None:
        """A response's status line and headers arrived (a redirect hop's, or the final one's)."""
        now = _now()
        if self._sent is not None:
            self.ttfb_ns += now - self._sent
        self._sent = None
        self._response_at = now
        self.stage = "reading body"

    def body_read(self) -> None:
        if self._response_at is not None:
            self.transfer_ns = _now() - self._response_at

    def phases(self) -> dict[str, float]:
        return {
            "dns_ms": round(self.dns_ns / 1e6, 3),
            "connect_ms": round(self.connect_ns / 1e6, 3),
            "tls_ms": round(self.tls_ns / 1e6, 3),
            "ttfb_ms": round(self.ttfb_ns / 1e6, 3),
            "transfer_ms": round(self.transfer_ns / 1e6, 3),
        }


# ----- the hooks ---------------------------------------------------------------------------------

class TimedRequest(aiohttp.ClientRequest):
    """Marks the connection handed over, the headers written and the body's last byte written."""

    async def send(self, conn: Any) -> aiohttp.ClientResponse:
        if (trace := CURRENT.get()) is not None:
            trace.request_sending()
        return await super().send(conn)

    async def write_bytes(self, *args: Any, **kwargs: Any) -> None:
        """The body writer (a task the request started: it sees the request's trace)."""
        await super().write_bytes(*args, **kwargs)
        if (trace := CURRENT.get()) is not None:
            trace.body_sent()


class TimedResponse(aiohttp.ClientResponse):
    """Marks the status line and headers read."""

    async def start(self, connection: Any) -> TimedResponse:
        await super().start(connection)
        if (trace := CURRENT.get()) is not None:
            trace.response()
        return self


def timed_socket(addr_info: Any) -> socket.socket:
    """The connector's socket factory: what aiohappyeyeballs makes by default, with the moment marked."""
    if (trace := CURRENT.get()) is not None:
        trace.socket_made()
    family, type_, proto, _, _ = addr_info
    return socket.socket(family=family, type=type_, proto=proto)


class TimedResolver(AbstractResolver):
    """The connector's resolver (the system's unless `inner` is given), with the lookup timed."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        if self.inner is None:  # made on first use: a run to an IP literal never needs one
            self.inner = DefaultResolver()
        trace = CURRENT.get()
        if trace is not None:
            trace.dns_start()
        addrs = await self.inner.resolve(host, port, family)
        if trace is not None:
            trace.dns_end()
        return addrs

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()


def timed_session(connector: aiohttp.BaseConnector, **kwargs: Any) -> aiohttp.ClientSession:
    """A session whose requests and responses mark their phases on the `CURRENT` trace (the connector
    comes from `netopts.connector_for`, which adds the resolver and socket hooks)."""
    return aiohttp.ClientSession(connector=connector, request_class=TimedRequest, response_class=TimedResponse,
                                 **kwargs)


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
