"""Which values are secrets, and masking them in every spelling wherever the agent writes.

A value is a secret when its `${VAR}` is listed under top-level `secrets:`, or the variable's name
looks secret (PASSWORD, PASSWD, SECRET, TOKEN, APIKEY/API_KEY, PRIVATE, CREDENTIAL), or a step
extracted it with `secret: true`. Authorization, Cookie, Set-Cookie and Proxy-Authorization header
values and URL userinfo are masked always. Everything else (URLs, hosts, regions) is shown as is.
Each secret is masked in all its encodings (`secret_forms`), compiled once.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator

from qos_agent.language.secret_forms import compile_secrets

MASK = "***"
MIN_SECRET_LEN = 4  # shorter values would mask every digit and short word: a validate warning instead
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
# scheme://user:password@host -> scheme://***@host (the userinfo, never the host)
_USERINFO = re.compile(r"(?<=://)[^/\s@?#'\"<>]+@")


def looks_secret(name: str) -> bool:
    """A variable whose name says it holds a secret (SHOP_PASSWORD, api_key, GITHUB_TOKEN...)."""
    return SECRET_NAME.search(name) is not None


def maskable(value: str) -> bool:
    return len(value) >= MIN_SECRET_LEN


def header_secrets(name: str, value: str) -> list[str]:
    """What to mask of a header: an auth header's value and its credentials, a cookie's values."""
    name = name.lower()
    if name not in SENSITIVE_HEADERS or not value:
        return []
    out = [value.strip()]
    if name in ("authorization", "proxy-authorization"):
        out.append(value.strip().partition(" ")[2].strip())  # "Bearer abc" -> also "abc"
    else:  # cookie: a=1; b=2 / set-cookie: a=1; Path=/; HttpOnly (several joined by ", ")
        for part in re.split(r"[;,]", value):
            key, eq, val = part.strip().partition("=")
            if eq and key.lower() not in _COOKIE_ATTRIBUTES:
                out.append(val.strip().strip('"'))
    return [v for v in out if v]


_COOKIE_ATTRIBUTES = frozenset({"path", "domain", "expires", "max-age", "samesite", "priority"})


class Redactor:
    """Masks its secrets (and URL userinfo) in text; `child()` adds a run's own secrets."""

    def __init__(self, secrets: Iterable[str] = (), parent: Redactor | None = None) -> None:
        self.parent = parent
        self._own: list[str] = []
        self._anchors: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        self._compiled = True
        self.set(secrets)

    def set(self, secrets: Iterable[str]) -> None:
        """Replace the secrets (a reload); too-short values are left out (validate warned)."""
        self._own = sorted({s for s in secrets if s and maskable(s)}, key=len, reverse=True)
        self._anchors = [_anchor(s) for s in self._own]
        self._pattern, self._compiled = None, not self._own  # compiled on first need (a run's may never)

    def add(self, *values: str) -> None:
        """A secret learnt at run time (an extracted token, an Authorization header's value)."""
        new = [v for v in values if v and maskable(v) and v not in self._own]
        if new:
            self.set([*self._own, *new])

    def child(self) -> Redactor:
        """A run's redactor: this one's secrets plus what the run learns, dropped with the run."""
        return Redactor(parent=self)

    @property
    def secrets(self) -> list[str]:
        """The raw secrets, longest first (own and inherited)."""
        inherited = self.parent.secrets if self.parent is not None else []
        return sorted({*self._own, *inherited}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        # Letters and digits are spelled the same in every encoding: a text without a secret's
        # longest run of them cannot hold the secret, and most texts are let through unsearched.
        if self._own and any(not a or a in text for a in self._anchors):
            if not self._compiled:
                self._pattern, self._compiled = compile_secrets(self._own), True
            if self._pattern is not None:
                text = self._pattern.sub(MASK, text)
        if self.parent is not None:
            return self.parent(text)
        if "@" in text:
            text = _USERINFO.sub(MASK + "@", text)
        return text


def _anchor(secret: str) -> str:
    """The secret's longest run of ASCII letters and digits ('' when it has none of 2 or more)."""
    runs = re.findall(r"[A-Za-z0-9]{2,}", secret)
    return max(runs, key=len) if runs else ""


class RedactingFilter(logging.Filter):
    """Masks secrets in every log record that passes through a handler."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:  # a traceback's text may quote a secret too
            record.exc_text = self.redactor(logging.Formatter().formatException(record.exc_info))
        return True


@contextlib.contextmanager
def redacted_logs(redactor: Redactor) -> Iterator[None]:
    """Mask secrets in every log line written by the root logger's handlers while inside."""
    log_filter = RedactingFilter(redactor)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)
