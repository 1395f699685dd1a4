"""Networking options at run time (probes/common/netspec.py parses them): proxy, mTLS, CA file,
IP version, pinned addresses turned into SSL contexts and aiohttp connectors.

SSL contexts are cached per (verify, ca, cert, key) so a run pays no CA loading.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from probes.common.castore import trust_system
from probes.common.http_trace import TimedResolver, _TimedContext, ssl_context, timed_socket
from probes.common.netspec import PEM, NetSpec


@contextlib.contextmanager
def _as_file(value: str) -> Any:
    """A path for `load_cert_chain`: the file itself, or PEM text in a private temporary file."""
    if not value.lstrip().startswith(PEM):
        yield value or None
        return
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


@lru_cache(maxsize=64)
def tls_context(verify: bool, ca_file: str = "", client_cert: str = "", client_key: str = "") -> ssl.SSLContext:
    """A (timed) client context: the shared default one, or one with a CA file and/or a client certificate.

    Raises ssl.SSLError / OSError for an unreadable or mismatched certificate (the step fails: tls)."""
    if not (ca_file or client_cert):
        return ssl_context(verify)
    ctx = _TimedContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        trust_system(ctx)
        if ca_file:
            ctx.load_verify_locations(cafile=ca_file)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    load_client(ctx, client_cert, client_key)
    return ctx


def load_client(ctx: ssl.SSLContext, client_cert: str, client_key: str) -> None:
    """Load a client certificate (file or PEM text) into a context, if one is given."""
    if client_cert:
        with _as_file(client_cert) as certfile, _as_file(client_key) as keyfile:
            ctx.load_cert_chain(certfile, keyfile)


def context_for(verify: bool, net: NetSpec) -> ssl.SSLContext:
    return tls_context(verify, net.ca_file, net.client_cert, net.client_key)


class PinnedResolver(AbstractResolver):
    """Answers pinned names from `resolve:`, asks the system for the rest (optionally one family)."""

    def __init__(self, pins: dict[str, str]) -> None:
        self.pins = {h.lower().rstrip("."): ip for h, ip in pins.items()}
        self.inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        ip = self.pins.get(host.lower().rstrip("."))
        if ip is None:
            return await self.inner.resolve(host, port, family)
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [ResolveResult(hostname=host, host=ip, port=port, family=fam, proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        await self.inner.close()


def connector_for(net: NetSpec) -> aiohttp.TCPConnector:
    """A fresh connector without a DNS cache (every run really resolves), with the step's family and
    pins, its lookups and sockets marked on the request's trace (`http_trace`)."""
    if not net.custom_connector:
        return aiohttp.TCPConnector(use_dns_cache=False, resolver=TimedResolver(), socket_factory=timed_socket)
    family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(net.ip_version, socket.AF_UNSPEC)
    resolver = TimedResolver(PinnedResolver(dict(net.resolve)) if net.resolve else None)
    return aiohttp.TCPConnector(use_dns_cache=False, ttl_dns_cache=0, family=family, resolver=resolver,
                                socket_factory=timed_socket)


def session_key(net: NetSpec) -> str:
    """Runs share one session per connector shape: the plain one, or one per family/pins."""
    if not net.custom_connector:
        return "http"
    return f"http:{net.ip_version}:{sorted(net.resolve)}"


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY")


def env_names_a_proxy() -> bool:
    """Whether the environment names a proxy to honour. aiohttp's trust_env also reads ~/.netrc for
    every request, on a thread: without a proxy the agent leaves it off (bench_throughput: about
    0.9 ms of client CPU per step here)."""
    return any(os.environ.get(name) for name in _PROXY_VARS)
