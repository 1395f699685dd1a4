"""The system's trusted CAs for a verifying TLS context, without parsing the whole bundle each time.

Why: `load_default_certs` (OpenSSL's `set_default_verify_paths`) parses every certificate of the
system bundle (~140 on Debian) into each context: ~40 ms a context with OpenSSL 3, paid at start-up
by every probe that verifies (the HTTP probe's context, the tls probe's chain context), on top of the
two contexts aiohttp makes when it is imported. Linux distributions also keep the same certificates
in OpenSSL's hashed directory (`/etc/ssl/certs/<subject hash>.0`, written by update-ca-certificates),
from which OpenSSL reads only the issuers a handshake needs, when it needs them, and keeps them.

So a verifying context trusts that directory when it holds every certificate of the bundle (the
ones SSL_CERT_DIR / SSL_CERT_FILE name when set); else it loads the defaults as before. Same trust
either way; only when the parsing happens differs.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import ssl
from functools import cache
from pathlib import Path

HASHED = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")  # c_rehash / update-ca-certificates: <subject hash>.<n>
BEGIN = b"-----BEGIN CERTIFICATE-----"
END = b"-----END CERTIFICATE-----"


def trust_system(ctx: ssl.SSLContext, directory: str | None = None) -> None:
    """Make ctx trust the system CAs: the hashed directory (given, or the system's when it covers the
    bundle), else `load_default_certs`."""
    directory = directory or system_directory()
    if directory:
        ctx.load_verify_locations(capath=directory)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


@cache
def system_directory() -> str | None:
    """OpenSSL's CA directory (SSL_CERT_DIR or its default) when it holds every certificate of its CA
    file (SSL_CERT_FILE or the default): compared as DER bytes, base64 only, no X.509 parsing (~5 ms)."""
    paths = ssl.get_default_verify_paths()  # the environment's overrides resolved, as OpenSSL will
    if not paths.capath:
        return None
    try:
        names = [name for name in os.listdir(paths.capath) if HASHED.match(name)]
        held = {der for name in names for der in _ders(Path(paths.capath, name).read_bytes())}
        bundle = _ders(Path(paths.cafile).read_bytes()) if paths.cafile else []
    except (OSError, ValueError, binascii.Error):
        return None
    return paths.capath if held and held.issuperset(bundle) else None


def _ders(pem: bytes) -> list[bytes]:
    """The certificates of a PEM file as DER (ValueError for a malformed one)."""
    out = []
    for part in pem.split(BEGIN)[1:]:
        body, end, _ = part.partition(END)
        if not end:
            raise ValueError("unterminated certificate")
        out.append(base64.b64decode(b"".join(body.split()), validate=True))
    return out
