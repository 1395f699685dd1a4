"""`expect:` of the kinds that judge a served certificate (tls, tcp with tls, websocket), parsed at
load without importing a certificate parser: expiry, TLS version, chain and host-name validity."""

from __future__ import annotations

from dataclasses import dataclass

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.text import shown as quoted

TLS_VERSIONS = {"1.0": "TLSv1", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}
EXPECT_KEYS = ("cert_days_left", "tls_version_min", "hostname_valid", "chain_valid", "latency")


@dataclass(frozen=True, slots=True)
class TlsExpect:
    cert_days_left: float | None = None
    tls_version_min: str = ""
    hostname_valid: bool | None = None
    chain_valid: bool | None = None
    latency_s: float | None = None


def cert_days_left(r: Reader) -> float | None:
    """`cert_days_left: 14`: a number of days >= 0 (the http, tls, tcp and websocket steps read it)."""
    days = r.number("cert_days_left", None)
    n = r.get("cert_days_left")
    if days is not None and days < 0 and n is not None:
        r.bad("cert_days_left", n, "must be a number of days >= 0", "write cert_days_left: 14")
        return None
    return days


def parse_tls_expect(node: Node | None, problems: Problems, keys: tuple[str, ...] = EXPECT_KEYS) -> TlsExpect:
    r = Reader.section(node, problems, keys, "expect")
    if r is None:
        return TlsExpect()
    version = r.str("tls_version_min", "")
    if version and version not in TLS_VERSIONS and (n := r.get("tls_version_min")) is not None:
        problems.add(n.loc, f"'tls_version_min' is {quoted(version)}",
                     "write tls_version_min: \"1.2\" (1.0, 1.1, 1.2, 1.3)")
        version = ""
    return TlsExpect(
        cert_days_left=cert_days_left(r),
        tls_version_min=version,
        hostname_valid=r.bool("hostname_valid") if r.has("hostname_valid") else None,
        chain_valid=r.bool("chain_valid") if r.has("chain_valid") else None,
        latency_s=r.duration("latency", 0.0) or None if r.has("latency") else None,
    )
