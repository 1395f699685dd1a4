"""Every way an HTTP request can fail, mapped to one ErrorClass and a short message.

The order matters: aiohttp's TLS errors are also connector errors, and its timeouts are also
connection errors, so the most specific class is tested first. Messages name the host and the
stage reached, never the full URL (its query may hold a token); the probe redacts them too.
"""

from __future__ import annotations

import os
import re
import socket
import ssl

import aiohttp

from qos_agent.errors import StepFailure
from qos_agent.language.text import one_line
from qos_agent.model import ErrorClass
from qos_agent.steps.measure import unexpected

_INNER_MESSAGE = re.compile(r"message='([^']{1,300})'")


class BodyTooLarge(StepFailure):
    """The response body grew past `max_body`."""

    def __init__(self, limit: int) -> None:
        super().__init__(ErrorClass.TOO_LARGE, f"body larger than {limit} bytes (max_body)")
        self.limit = limit


def _reason(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", exc)
    if isinstance(os_error, OSError):
        if isinstance(os_error.errno, int) and os_error.errno > 0 and not isinstance(os_error, socket.gaierror):
            return os.strerror(os_error.errno).lower()
        if os_error.strerror:
            return os_error.strerror.lower()
    return str(exc) or type(exc).__name__


def _parser_reason(message: object) -> str:
    """aiohttp's parser message without the raw bytes it quotes (`b'...'`, a caret line): one short line."""
    lines = [x.strip() for x in str(message).splitlines()[:10]]
    words = [x.rstrip(":") for x in lines if x and not x.startswith(("b'", 'b"', "^"))]
    return one_line(": ".join(words) or "malformed", 160)


def _payload_reason(exc: BaseException) -> str:
    """The inner reason of a ClientPayloadError (its str() nests Python reprs)."""
    m = _INNER_MESSAGE.search(str(exc)[:2000])
    return one_line(m.group(1).rstrip(".") if m else "the connection ended before the body did", 160)


def _host(exc: BaseException) -> str:
    try:
        return f"{exc.host}:{exc.port}"  # type: ignore[attr-defined]
    except AttributeError:
        return "the server"


def classify(exc: BaseException, stage: str, timeout_s: float) -> tuple[ErrorClass, str]:
    """(error class, message) for an exception raised while making one request."""
    if isinstance(exc, aiohttp.TooManyRedirects):
        return ErrorClass.REDIRECTS, f"too many redirects ({len(exc.history)}, max_redirects)"
    if isinstance(exc, TimeoutError):  # asyncio.timeout and every aiohttp timeout
        return ErrorClass.TIMEOUT, f"timed out after {timeout_s:g}s ({stage})"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        why = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or str(cert)
        return ErrorClass.TLS, f"TLS certificate of {_host(exc)} not trusted: {why}"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        reason = getattr(exc, "reason", None) or _reason(exc)
        return ErrorClass.TLS, f"TLS handshake with {_host(exc)} failed: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ErrorClass.DNS, f"cannot resolve {exc.host}: {_reason(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ErrorClass.CONNECT, f"cannot connect to {_host(exc)}: {_reason(exc)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorClass.CONNECT, f"server closed the connection ({stage})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ErrorClass.CONNECT, f"response body cut off: {_payload_reason(exc)}"
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed response
        return ErrorClass.CONNECT, f"invalid HTTP response: {_parser_reason(exc.message)}"
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return ErrorClass.CONNECT, f"connection failed ({stage}): {_reason(exc)}"
    if isinstance(exc, aiohttp.InvalidURL):
        return ErrorClass.INTERNAL, f"invalid URL after rendering: {exc}"
    return unexpected(exc)
