"""Networking options of a browser step (long form): a proxy and client certificates (mTLS).

    browser:
      actions: [{goto: "https://intranet.example/"}]
      proxy: http://proxy.internal:3128   # else HTTPS_PROXY / HTTP_PROXY (with NO_PROXY) from the environment
      client_cert: certs/agent.pem        # sent to the https origins the step's goto actions visit
      client_key: ${AGENT_KEY}
      verify_tls: false                   # accept certificates Chromium does not trust (private CAs)

They become Playwright context options, so they hold for the run's browser context, which the
run's first browser step opens. `ca_file`, `ip_version` and `resolve` have no per-context
equivalent in Chromium and are not offered here (see docs/journeys.md).
"""

from __future__ import annotations

import os
from typing import Any

from yarl import URL

from probes.common.netspec import PEM, NetSpec

BROWSER_NET_KEYS = ("proxy", "client_cert", "client_key", "verify_tls")


def _env_proxy() -> tuple[str, str]:
    """(proxy, bypass list) from the environment, as curl and aiohttp read them."""
    env = {k.lower(): v for k, v in os.environ.items() if k.lower() in ("https_proxy", "http_proxy", "no_proxy")}
    return env.get("https_proxy") or env.get("http_proxy") or "", env.get("no_proxy", "")


def _origin(url: URL) -> str:
    port = f":{url.port}" if url.port and not url.is_default_port() else ""
    return f"{url.scheme}://{url.host}{port}"


def _pem_or_path(value: str, pem_key: str, path_key: str) -> dict[str, Any]:
    return {pem_key: value.encode()} if value.lstrip().startswith(PEM) else {path_key: value}


def context_options(net: NetSpec, urls: list[str], verify_tls: bool = True) -> dict[str, Any]:
    """Playwright `new_context` options for a (rendered) NetSpec and the step's goto URLs."""
    options: dict[str, Any] = {} if verify_tls else {"ignore_https_errors": True}
    proxy, bypass = (net.proxy, "") if net.proxy else _env_proxy()
    if proxy:
        options["proxy"] = {"server": proxy, **({"bypass": bypass} if bypass else {})}
    if net.client_cert:
        origins = sorted({_origin(URL(u)) for u in urls if u.startswith("https://")})
        cert = _pem_or_path(net.client_cert, "cert", "certPath")
        key = _pem_or_path(net.client_key, "key", "keyPath") if net.client_key else {}
        options["client_certificates"] = [{"origin": o, **cert, **key} for o in origins]
    return options
