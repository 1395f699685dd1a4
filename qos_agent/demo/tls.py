"""The demo's HTTPS side: a certificate generated at start, served on a second port.

The sample journeys check a certificate out of the box (tls step, `cert_days_left` on an https
step), so the demo serves the same app over TLS too, on a free port it announces at `/api/tls`
(the sample reads the port from there: nothing to configure). The certificate is self-signed for
127.0.0.1 and localhost, valid for `DAYS` days; the key never leaves memory and a private
temporary file that is deleted once loaded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import ssl
import tempfile

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAYS = 90
TLS_INFO = web.AppKey("tls_info", dict)


def certificate(days: int = DAYS) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM): self-signed for localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qos-agent demo")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(days: int = DAYS) -> ssl.SSLContext:
    cert, key = certificate(days)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key + cert)
        ctx.load_cert_chain(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return ctx


async def tls_info(request: web.Request) -> web.Response:
    """Where the demo serves HTTPS (404 when it does not)."""
    info = request.app[TLS_INFO]
    if not info:
        return web.json_response({"error": "this demo does not serve HTTPS"}, status=404)
    return web.json_response(info)


def add_routes(app: web.Application) -> None:
    app[TLS_INFO] = {}  # filled once the HTTPS site listens (the dict itself never changes)
    app.router.add_get("/api/tls", tls_info)


async def start_https(runner: web.AppRunner, host: str) -> str:
    """A second site of the same app over TLS on a free port; returns its base URL."""
    site = web.TCPSite(runner, host, 0, ssl_context=server_context())
    await site.start()
    port = runner.addresses[-1][1]
    shown = f"[{host}]" if ":" in host else host
    url = f"https://{shown}:{port}"
    runner.app[TLS_INFO].update(url=url, host=host, port=port, days=DAYS)
    return url
