"""The system CA store through OpenSSL's hashed directory: the same trust as the bundle, read on demand."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from probes.common import castore
from tests.support.certs import Pki, tls_server
from tests.support.components import needs

needs_openssl = needs(shutil.which("openssl") is not None, "the openssl command (Debian package openssl)")


def hashed_copy(pem_file: str, directory: Path) -> None:
    """What update-ca-certificates does for one CA: `<subject hash>.0` in the directory."""
    digest = subprocess.run(["openssl", "x509", "-subject_hash", "-noout", "-in", pem_file], capture_output=True,
                            text=True, check=True, timeout=10).stdout.strip()
    shutil.copy(pem_file, directory / f"{digest}.0")


async def handshake(port: int, ctx: ssl.SSLContext) -> str:
    async with asyncio.timeout(5):
        _r, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return str(version)


def test_the_system_directory_holds_exactly_the_bundles_certificates() -> None:
    directory = castore.system_directory()
    assert directory is not None, "Debian's /etc/ssl/certs (package ca-certificates) covers its bundle"
    loaded = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    loaded.load_default_certs(ssl.Purpose.SERVER_AUTH)  # the bundle, parsed whole
    bundle = set(loaded.get_ca_certs(binary_form=True))
    in_dir = {ssl.PEM_cert_to_DER_cert(p.read_text()) for p in Path(directory).iterdir() if castore.HASHED.match(p.name)}
    assert len(bundle) > 50
    assert bundle == in_dir


@needs_openssl
async def test_a_chain_to_a_root_in_the_directory_verifies_and_any_other_is_refused(tmp_path: Path) -> None:
    pki, other = Pki(), Pki()
    trusted, untrusted = tmp_path / "trusted", tmp_path / "untrusted"
    trusted.mkdir()
    untrusted.mkdir()
    hashed_copy(pki.ca_file, trusted)
    hashed_copy(other.ca_file, untrusted)
    async with tls_server(pki.leaf()) as port:
        ok = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        castore.trust_system(ok, str(trusted))
        assert (await handshake(port, ok)).startswith("TLS")
        refused = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        castore.trust_system(refused, str(untrusted))
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await handshake(port, refused)


def test_a_bundle_with_a_certificate_the_directory_lacks_keeps_openssls_defaults(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    system = castore.system_directory()
    assert system is not None
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(Path(ssl.get_default_verify_paths().cafile or "").read_bytes() + Path(Pki().ca_file).read_bytes())
    try:
        castore.system_directory.cache_clear()
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # a CA added to the file by hand, not to the directory
        assert castore.system_directory() is None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        castore.trust_system(ctx)  # so the file is loaded whole, the added CA with it
        assert len(ctx.get_ca_certs()) == bundle.read_bytes().count(b"BEGIN CERTIFICATE")
        castore.system_directory.cache_clear()
        monkeypatch.setenv("SSL_CERT_FILE", str(ssl.get_default_verify_paths().openssl_cafile))
        assert castore.system_directory() == system
    finally:
        castore.system_directory.cache_clear()
