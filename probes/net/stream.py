"""One TCP connection (optionally TLS) opened in measured phases, for the tls and tcp steps.

    dns_ms      getaddrinfo (0 for an IP literal)
    connect_ms  TCP handshake (the first address that answers)
    tls_ms      TLS handshake (asyncio's `StreamWriter.start_tls` on the connected stream)

Phases are separate calls, so each is timed exactly; the stage reached names what a timeout cut.
Failures raise `StepFailure` with the documented error classes (dns, connect, tls, timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
import time
from dataclasses import dataclass, field

from probes.common.tls_facts import verify_reason
from qos_agent.errors import StepFailure
from qos_agent.model import ErrorClass


@dataclass(slots=True)
class Phases:
    stage: str = "starting"
    dns_ms: float = 0.0
    connect_ms: float = 0.0
    tls_ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        out = {"dns_ms": round(self.dns_ms, 3), "connect_ms": round(self.connect_ms, 3)}
        if self.tls_ms:
            out["tls_ms"] = round(self.tls_ms, 3)
        return {**out, **{k: round(v, 3) for k, v in self.extra.items()}}


def since_ms(t0: int) -> float:
    return (time.perf_counter_ns() - t0) / 1e6


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return (exc.strerror or str(exc)).lower()
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def resolve(host: str, port: int, ip_version: int, phases: Phases) -> list[tuple[int, str]]:
    """(family, address) pairs; an IP literal skips the lookup."""
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host.strip("[]"))
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))]
    family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(ip_version, socket.AF_UNSPEC)
    phases.stage = "dns"
    t0 = time.perf_counter_ns()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise StepFailure(ErrorClass.DNS, f"cannot resolve {host}: {_reason(exc)}") from None
    finally:
        phases.dns_ms = since_ms(t0)
    seen: list[tuple[int, str]] = []
    for fam, _t, _p, _c, addr in infos:
        if (fam, str(addr[0])) not in seen:
            seen.append((fam, str(addr[0])))
    return seen


async def open_stream(host: str, port: int, phases: Phases, ip_version: int = 0
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the first address that answers; connect_ms covers the attempts."""
    addresses = await resolve(host, port, ip_version, phases)
    phases.stage = "connect"
    t0 = time.perf_counter_ns()
    last: OSError | None = None
    try:
        for _fam, address in addresses:
            try:
                return await asyncio.open_connection(address, port, limit=1 << 20)
            except OSError as exc:
                last = exc
    finally:
        phases.connect_ms = since_ms(t0)
    why = _reason(last) if last is not None else "no address"
    raise StepFailure(ErrorClass.CONNECT, f"cannot connect to {host}:{port}: {why}")


async def start_tls(writer: asyncio.StreamWriter, ctx: ssl.SSLContext, server_name: str, phases: Phases,
                    where: str) -> None:
    """The TLS handshake on a connected stream; a refused certificate says why."""
    phases.stage = "tls"
    t0 = time.perf_counter_ns()
    try:
        await writer.start_tls(ctx, server_hostname=server_name)
    except ssl.SSLCertVerificationError as exc:
        raise StepFailure(ErrorClass.TLS, f"TLS certificate of {where} not trusted: {verify_reason(exc)}") from None
    except ssl.SSLError as exc:
        raise StepFailure(ErrorClass.TLS, f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except (ConnectionError, OSError) as exc:
        raise StepFailure(ErrorClass.TLS, f"TLS handshake with {where} failed: {_reason(exc)}") from None
    finally:
        phases.tls_ms = since_ms(t0)
    phases.stage = "connected"


async def close(writer: asyncio.StreamWriter) -> None:
    """Close without waiting for the peer. A TLS stream is aborted: waiting for the peer's
    close_notify would add a round trip (or a hang) to the step, and the probe is done with it."""
    if writer.get_extra_info("ssl_object") is not None:
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
