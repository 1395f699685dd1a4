"""Networking options of http, websocket, tcp, tls and browser steps, as written: parsed at load.

    proxy: http://proxy:3128          # else HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment
    client_cert: certs/client.pem     # a file (relative to journeys.yaml) or PEM text from ${VAR}
    client_key: ${CLIENT_KEY}
    ca_file: certs/ca.pem             # trusted in addition to the system store
    ip_version: 4                     # 4 or 6: only that address family
    resolve: {shop.example: 127.0.0.1}  # like curl --resolve: check one edge, keep the name (SNI, Host)

Parsed with located problems (a missing file, a bad address); every value may hold `{{ }}` templates,
rendered per run (`render_net`). What uses them at run time (contexts, connectors) is `netopts`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def node_has_net(node: Node) -> bool:
    return any(node.get(k) is not None for k in NET_KEYS)
