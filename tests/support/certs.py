"""Certificates made in the test with chosen expiry (cryptography), and TLS servers that serve them.

    pki = Pki()                                     # a root CA and an intermediate
    leaf = pki.leaf(days=3)                         # root -> intermediate -> leaf, served with the intermediate
    leaf = pki.leaf(days=200, names=("other.test",))
    leaf = pki.leaf(expired=True)
    leaf = pki.leaf(self_signed=True)
    leaf = pki.leaf(days=200, with_intermediate=False)   # the intermediate missing from the chain
    async with tls_server(leaf) as port: ...        # accepts, handshakes, says nothing
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)
PEM = serialization.Encoding.PEM


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]  # what the server sends after the leaf
    dir: Path

    @property
    def not_after(self) -> dt.datetime:
        return min(c.not_valid_after_utc for c in (self.cert, *self.chain))

    def files(self) -> tuple[str, str]:
        """(cert chain file, key file)."""
        cert = self.dir / f"leaf-{self.cert.serial_number}.pem"
        key = self.dir / f"leaf-{self.cert.serial_number}.key"
        cert.write_bytes(b"".join(c.public_bytes(PEM) for c in (self.cert, *self.chain)))
        key.write_bytes(_key_pem(self.key))
        return str(cert), str(key)

    def server_context(self, client_ca: str | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.files())
        if client_ca:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


class Pki:
    """A root CA and an intermediate under it; the root's PEM file is `ca_file`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qos-pki-"))
        self.root_key = _key()
        self.root = self._cert(_name("QoS Test Root"), self.root_key.public_key(), _name("QoS Test Root"),
                               self.root_key, days=3650, ca=True)
        self.inter_key = _key()
        self.inter = self._cert(_name("QoS Test Intermediate"), self.inter_key.public_key(), self.root.subject,
                                self.root_key, days=1000, ca=True)
        self.ca_file = str(self.dir / "root.pem")
        Path(self.ca_file).write_bytes(self.root.public_bytes(PEM))

    @staticmethod
    def _cert(subject: x509.Name, public: ec.EllipticCurvePublicKey, issuer: x509.Name,
              signer: ec.EllipticCurvePrivateKey, days: float, ca: bool, names: tuple[str, ...] = (),
              start_days: float = -1, client: bool = False) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
             .serial_number(x509.random_serial_number())
             .not_valid_before(NOW + dt.timedelta(days=start_days)).not_valid_after(NOW + dt.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                              content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False, encipher_only=False,
                                              decipher_only=False), critical=True)
        else:
            sans: list[x509.GeneralName] = []
            for n in names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return b.sign(signer, hashes.SHA256())

    def leaf(self, days: float = 200, names: tuple[str, ...] = ("localhost", "127.0.0.1"), expired: bool = False,
             self_signed: bool = False, with_intermediate: bool = True, client: bool = False) -> Issued:
        key = _key()
        subject = _name(names[0])
        start, end = (-30, -2) if expired else (-1, days)
        if self_signed:
            cert = self._cert(subject, key.public_key(), subject, key, end, ca=False, names=names, start_days=start)
            return Issued(cert, key, (), self.dir)
        cert = self._cert(subject, key.public_key(), self.inter.subject, self.inter_key, end, ca=False, names=names,
                          start_days=start, client=client)
        return Issued(cert, key, (self.inter,) if with_intermediate else (), self.dir)


@asynccontextmanager
async def tls_server(issued: Issued, banner: bytes = b"", client_ca: str | None = None) -> AsyncIterator[int]:
    """A TLS server on 127.0.0.1 that sends `banner` after the handshake then waits; yields its port."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with suppress(ConnectionError, OSError):
            if banner:
                writer.write(banner)
                await writer.drain()
            await reader.read(1024)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=issued.server_context(client_ca),
                                        ssl_handshake_timeout=5)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in writers:
            w.close()
        server.close()
        with suppress(Exception):
            async with asyncio.timeout(2):
                await server.wait_closed()
