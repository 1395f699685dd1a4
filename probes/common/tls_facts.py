"""What a TLS handshake served: certificate expiry, version, cipher, issuer, subject.

Shared by the http, tls, tcp, websocket and grpc steps. The expiry is the earliest `notAfter` over
the chain the server sent (blackbox_exporter's `probe_ssl_earliest_cert_expiry`), read from the
unverified chain so a step with `verify_tls: false` (or a failed verification) still reports it.
Python 3.13 has `SSLObject.get_unverified_chain()`; 3.10-3.12 have the same method on the
underlying `_sslobj`. Certificates are parsed with `cryptography`.

A pooled connection keeps its `SSLObject`, so a reused connection reports the values of the
handshake that made it; facts are cached per `SSLObject`, so reuse costs no parsing.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import weakref
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from probes.common.tls_expect import TLS_VERSIONS
from qos_agent.language.text import shown as quoted
from qos_agent.model import StepResult

DAY_S = 86400.0
# OpenSSL's X509_V_ERR_* codes behind the reasons a user acts on.
_REASONS = {
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "untrusted chain (issuer unknown or an intermediate missing)",
    21: "untrusted chain (an intermediate missing)",
    2: "untrusted chain (issuer certificate missing)",
    62: "wrong host (the certificate does not name it)",
    64: "wrong host (the certificate does not name this IP address)",
}


@dataclass(frozen=True, slots=True)
class TlsFacts:
    not_after_ms: int  # earliest notAfter over the served chain (0: no certificate seen)
    version: str  # TLSv1.3
    cipher: str
    issuer: str  # of the leaf
    subject: str  # of the leaf
    sans: tuple[str, ...] = ()  # the leaf's DNS names and IP addresses

    def days_left(self, now_s: float | None = None) -> float:
        now = time.time() if now_s is None else now_s
        return (self.not_after_ms / 1000.0 - now) / DAY_S

    def apply(self, result: StepResult) -> None:
        """Record the facts on a step result: numbers as metrics, strings as text fields."""
        if self.not_after_ms:
            result.metrics["cert_expiry_days"] = round(self.days_left(), 4)
            result.metrics["cert_not_after_ms"] = float(self.not_after_ms)
        result.text.update(tls_version=self.version, tls_cipher=self.cipher, cert_issuer=self.issuer,
                           cert_subject=self.subject)


_CACHE: weakref.WeakKeyDictionary[Any, TlsFacts] = weakref.WeakKeyDictionary()


def _name(name: x509.Name) -> str:
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else name.rfc4514_string()


def chain_der(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """The certificates the server sent, leaf first, as DER."""
    get = getattr(ssl_object, "get_unverified_chain", None)
    if get is None:
        get = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    chain = get() if get is not None else None
    if chain:
        out = []
        for cert in chain:
            der = cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            out.append(der)
        return out
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def facts_from_chain(chain: list[bytes], version: str, cipher: str) -> TlsFacts:
    certs = [x509.load_der_x509_certificate(der) for der in chain]
    if not certs:
        return TlsFacts(0, version, cipher, "", "")
    earliest = min(c.not_valid_after_utc for c in certs)
    leaf = certs[0]
    sans: list[str] = []
    try:
        ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [*ext.get_values_for_type(x509.DNSName), *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        pass
    return TlsFacts(int(earliest.timestamp() * 1000), version, cipher, _name(leaf.issuer), _name(leaf.subject),
                    tuple(sans))


def facts_of(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> TlsFacts | None:
    """The facts of one TLS connection (None for plain TCP or a certificate that cannot be parsed)."""
    if ssl_object is None:
        return None
    try:
        return _CACHE[ssl_object]
    except (KeyError, TypeError):
        pass
    cipher = ssl_object.cipher()
    try:
        facts = facts_from_chain(chain_der(ssl_object), ssl_object.version() or "", cipher[0] if cipher else "")
    except ValueError:
        return None
    with contextlib.suppress(TypeError):  # not weak-referenceable: no cache
        _CACHE[ssl_object] = facts
    return facts


def facts_of_transport(transport: Any) -> TlsFacts | None:
    get = getattr(transport, "get_extra_info", None)
    return facts_of(get("ssl_object")) if get is not None else None


def facts_of_response(resp: Any) -> TlsFacts | None:
    """The facts of the connection an aiohttp response came on. aiohttp releases the connection as
    soon as a small body is read (`resp.connection` is then None), so its protocol is asked too."""
    conn = resp.connection
    transport = conn.transport if conn is not None else getattr(getattr(resp, "_protocol", None), "transport", None)
    return facts_of_transport(transport)


def check_days_left(facts: TlsFacts | None, min_days: float | None) -> str | None:
    """The failure message of `expect: {cert_days_left: N}`, or None when it holds."""
    if min_days is None:
        return None
    if facts is None:
        return "cert_days_left: the connection is not TLS (no certificate to check)"
    if not facts.not_after_ms:
        return "cert_days_left: the server sent no certificate"
    left = facts.days_left()
    if left < min_days:
        when = "expired" if left < 0 else "expires"
        return (f"certificate {when} in {left:.1f} days (cert_days_left: {min_days:g}); "
                f"subject {quoted(facts.subject)}, earliest notAfter {_iso(facts.not_after_ms)}")
    return None


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def verify_reason(exc: BaseException) -> str:
    """Why a certificate was refused, in the words a user acts on."""
    code = getattr(exc, "verify_code", None)
    if isinstance(code, int) and code in _REASONS:
        return _REASONS[code]
    message = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
    return str(message)


def hostname_matches(name: str, sans: tuple[str, ...]) -> bool:
    """RFC 6125 matching of a host name (or IP) against the leaf's SANs: `*` as the whole leftmost label."""
    host = name.rstrip(".").lower()
    for san in sans:
        pattern = san.rstrip(".").lower()
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False


_ORDER = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]


def version_at_least(version: str, minimum: str) -> bool:
    """`TLSv1.2` against a `tls_version_min: "1.2"`; an unknown version never passes."""
    want = TLS_VERSIONS.get(minimum, minimum)
    if version not in _ORDER or want not in _ORDER:
        return False
    return _ORDER.index(version) >= _ORDER.index(want)
