"""Networking options of http (and websocket) steps: proxy, mTLS, CA file, IP version, pinned addresses.

    proxy: http://proxy:3128          # else HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment
    client_cert: certs/client.pem     # a file (relative to journeys.yaml) or PEM text from ${VAR}
    client_key: ${CLIENT_KEY}
    ca_file: certs/ca.pem             # trusted in addition to the system store
    ip_version: 4                     # 4 or 6: only that address family
    resolve: {shop.example: 127.0.0.1}  # like curl --resolve: check one edge, keep the name (SNI, Host)

Parsed with located problems (a missing file, a bad address); every value may hold `{{ }}` templates,
rendered per run. SSL contexts are cached per (verify, ca, cert, key) so a run pays no CA loading.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from probes.common.castore import trust_system
from probes.common.http_trace import TimedResolver, _TimedContext, ssl_context, timed_socket
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted

NET_KEYS = ("proxy", "client_cert", "client_key", "ca_file", "ip_version", "resolve")
PEM = "-----BEGIN"


@dataclass(frozen=True, slots=True)
class NetSpec:
    proxy: str = ""
    client_cert: str = ""  # absolute path, or PEM text
    client_key: str = ""
    ca_file: str = ""
    ip_version: int = 0  # 0: any
    resolve: tuple[tuple[str, str], ...] = ()

    @property
    def custom_tls(self) -> bool:
        return bool(self.client_cert or self.ca_file)

    @property
    def custom_connector(self) -> bool:
        return bool(self.ip_version or self.resolve)


def _file(r: Reader, key: str, base: Path, problems: Problems, pem_ok: bool) -> str:
    n = r.get(key)
    value = r.str(key, "")
    if n is None or not value:
        return value
    if pem_ok and value.lstrip().startswith(PEM):
        return value
    if has_template(value):
        return value
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        fix = "give a PEM file's path (relative to journeys.yaml)" + (" or PEM text via ${VAR}" if pem_ok else "")
        problems.add(n.loc, f"'{key}' file not found: {path}", fix)
    return str(path)


def parse_net(r: Reader, problems: Problems, base: Path) -> NetSpec:
    """The networking keys of one step's mapping (the caller's Reader allows NET_KEYS)."""
    proxy = r.str("proxy", "")
    pn = r.get("proxy")
    if pn is not None and proxy and not has_template(proxy) and not proxy.startswith(("http://", "https://")):
        problems.add(pn.loc, f"'proxy' must be an http:// or https:// URL, not {quoted(proxy[:40])}",
                     "write proxy: http://proxy.internal:3128")
    cert = _file(r, "client_cert", base, problems, pem_ok=True)
    key = _file(r, "client_key", base, problems, pem_ok=True)
    if key and not cert and (kn := r.get("client_key")) is not None:
        problems.add(kn.loc, "'client_key' without 'client_cert'", "add client_cert: (the certificate of that key)")
    ip_version = 0
    vn = r.get("ip_version")
    if vn is not None:
        if str(vn.value) in ("4", "6"):
            ip_version = int(str(vn.value))
        else:
            problems.add(vn.loc, f"'ip_version' is {quoted(vn.value)}, not 4 or 6", "write ip_version: 4 (or 6)")
    resolve = r.str_map("resolve")
    rn = r.get("resolve")
    for host, ip in resolve.items():
        if has_template(ip):
            continue
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            loc = rn.get(host).loc if rn is not None and rn.get(host) is not None else r.node.loc  # type: ignore[union-attr]
            problems.add(loc, f"'resolve.{host}' is {quoted(ip)}, not an IP address", f"write {host}: 127.0.0.1")
    return NetSpec(proxy=proxy, client_cert=cert, client_key=key, ca_file=_file(r, "ca_file", base, problems, False),
                   ip_version=ip_version, resolve=tuple(resolve.items()))


def render_net(net: NetSpec, render: Any) -> NetSpec:
    """The spec with every `{{ }}` rendered for this run (the spec itself when it sets nothing to render)."""
    if not (net.proxy or net.client_cert or net.client_key or net.ca_file or net.resolve):
        return net
    return NetSpec(proxy=render(net.proxy), client_cert=render(net.client_cert), client_key=render(net.client_key),
                   ca_file=render(net.ca_file), ip_version=net.ip_version,
                   resolve=tuple((render(h), render(ip)) for h, ip in net.resolve))


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


def node_has_net(node: Node) -> bool:
    return any(node.get(k) is not None for k in NET_KEYS)


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY")


def env_names_a_proxy() -> bool:
    """Whether the environment names a proxy to honour. aiohttp's trust_env also reads ~/.netrc for
    every request, on a thread: without a proxy the agent leaves it off (bench_throughput: about
    0.9 ms of client CPU per step here)."""
    return any(os.environ.get(name) for name in _PROXY_VARS)
