"""What the alert sinks share: a disruption point read as an event, its words, and one HTTP POST.

The `alertmanager` and `webhook` sinks only turn `disruption` points into records and send them; the
core's delivery layer keeps the records durably and retries. Here: reading a disruption point
(`DisruptionEvent`), the one-line summary a person reads on a phone, checking URLs and auth at load
(located errors), and classifying an HTTP answer into the core's RetryableError / PermanentError.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp

from qos_agent.errors import PermanentError, RetryableError
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.model import Point

DEFAULT_SEVERITY = "warning"
_OWN_TAGS = frozenset({"agent", "journey", "region", "state"})
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class DisruptionEvent:
    """One `disruption` point (open or close), with the fields an alert needs."""

    journey: str
    region: str
    agent: str
    state: str  # open | close
    time_ms: int
    opened_ms: int
    reason: str
    uptime_ok: bool
    failed_step: str = ""
    error: str = ""
    error_message: str = ""
    severity: str = DEFAULT_SEVERITY
    runbook: str = ""
    duration_s: float | None = None
    tags: tuple[tuple[str, str], ...] = ()  # the journey's own tags
    fields: dict[str, object] = field(default_factory=dict)  # every field of the point

    @classmethod
    def of(cls, point: Point) -> DisruptionEvent | None:
        """The event of a disruption point; None for every other point."""
        if point.measurement != "disruption":
            return None
        tags = dict(point.tags)
        fields: dict[str, object] = dict(point.fields)
        state = tags.get("state", "")
        if state not in ("open", "close") or not tags.get("journey"):
            return None
        duration = fields.get("duration_s")
        return cls(
            journey=tags["journey"], region=tags.get("region", ""), agent=tags.get("agent", ""), state=state,
            time_ms=point.time_ms, opened_ms=int(str(fields.get("opened_ms", point.time_ms))),
            reason=str(fields.get("reason", "")), uptime_ok=fields.get("uptime_ok") is True,
            failed_step=str(fields.get("failed_step", "")), error=str(fields.get("error", "")),
            error_message=str(fields.get("error_message", "")),
            severity=str(fields.get("severity") or DEFAULT_SEVERITY), runbook=str(fields.get("runbook", "")),
            duration_s=float(duration) if isinstance(duration, int | float) else None,
            tags=tuple(sorted((k, v) for k, v in tags.items() if k not in _OWN_TAGS)), fields=fields)

    @property
    def key(self) -> str:
        """Which disruption: stable from open to close (and across restarts)."""
        return f"{self.agent}/{self.journey}/{self.region}"

    @property
    def hidden(self) -> bool:
        """Uptime monitoring of the same service stayed green: nobody else will page for this."""
        return self.uptime_ok

    def summary(self) -> str:
        """One line a person reads on a phone."""
        if self.state == "close":
            took = f" after {_duration(self.duration_s)}" if self.duration_s is not None else ""
            return f"RESOLVED: {self.journey} works again in {self.region}{took}"
        where = f" at step {self.failed_step}" if self.failed_step else ""
        hidden = " (uptime green: hidden from uptime monitoring)" if self.hidden else ""
        return f"{self.journey} broken in {self.region}{where}: {self.reason}{hidden}"

    def description(self) -> str:
        since = iso(self.opened_ms)
        text = (f"Journey {self.journey} as customers in {self.region} use it (measured by agent {self.agent}) "
                f"has broken its objective since {since}: {self.reason}.")
        if self.failed_step:
            text += f" Last failure: step {self.failed_step}"
            text += f" ({self.error}: {self.error_message})." if self.error else "."
        text += (" The uptime check of the same service stayed green, so uptime monitoring does not show this."
                 if self.hidden else " The uptime check saw a problem too (or there is none for this service).")
        if self.state == "close":
            text += f" It closed at {iso(self.time_ms)}."
        return text


def _duration(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def iso(ms: float) -> str:
    """RFC 3339 with milliseconds, UTC (Alertmanager's and PagerDuty's timestamps)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def label_name(name: str) -> str:
    """A journey tag name as a valid Prometheus label name (Alertmanager refuses others)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if _LABEL.match(cleaned) else f"_{cleaned}"


def valid_label(name: str) -> bool:
    return bool(_LABEL.match(name))


# -- configuration helpers (located errors) -----------------------------------------------------------------


def check_url(node: Node | None, url: str, problems: Problems, example: str) -> str:
    """An http(s) URL with a host, or a located problem."""
    if node is None or not url:
        return url
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        why = "has no scheme" if "://" not in url else "is not an http(s) URL"
        problems.add(node.loc, f"'{node.value if isinstance(node.value, str) else url}' {why}",
                     f"write e.g. {example}")
    return url.rstrip("/")


def read_auth(r: Reader, problems: Problems) -> str:
    """`auth: {bearer: T}` or `auth: {username: U, password: P}` -> the Authorization header value."""
    node = r.get("auth")
    if node is None:
        return ""
    a = Reader(node, problems, ("bearer", "username", "password"), "auth")
    if not a.ok:
        return ""
    if a.has("bearer") and (a.has("username") or a.has("password")):
        problems.add(node.loc, "'auth' has both a bearer token and basic auth", "keep one of them")
        return ""
    if a.has("bearer"):
        return f"Bearer {a.str('bearer')}"
    if a.has("username") != a.has("password"):
        problems.add(node.loc, "basic 'auth' needs both 'username' and 'password'",
                     "write auth: {username: ${AM_USER}, password: ${AM_PASSWORD}}")
        return ""
    if a.has("username"):
        user = a.str("username")
        if ":" in user:
            problems.add(node.loc, "'auth.username' cannot contain ':' (HTTP basic auth)", "use a user without ':'")
        return aiohttp.encode_basic_auth(user, a.str("password"))
    problems.add(node.loc, "'auth' is empty", "write auth: {bearer: ${AM_TOKEN}} or {username: ..., password: ...}")
    return ""


# -- sending -------------------------------------------------------------------------------------------------


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def classify(status: int, body: str, headers: Mapping[str, str], where: str,
             waiting: frozenset[int] = frozenset()) -> Exception | None:
    """None when accepted; RetryableError for 5xx, 408, 429 and `waiting` codes; PermanentError for 4xx."""
    if 200 <= status < 300:
        return None
    text = f"HTTP {status} from {where}: {body.strip()[:300]}"
    if status in waiting:
        return RetryableError(text, fix="check the URL and credentials; alerts wait until it works")
    if status in (408, 429) or status >= 500 or status < 200 or 300 <= status < 400:
        return RetryableError(text, retry_after=retry_after_seconds(headers.get("Retry-After")))
    return PermanentError(text)


async def post_json(session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str],
                    waiting: frozenset[int] = frozenset()) -> None:
    """POST a JSON body; raise the core's RetryableError / PermanentError unless it was accepted."""
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json", **headers}) as resp:
            text = await resp.text(errors="replace")
            err = classify(resp.status, text, dict(resp.headers), _no_userinfo(url), waiting)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise RetryableError(f"cannot reach {_no_userinfo(url)}: {type(e).__name__}: {e}") from e
    if err is not None:
        raise err


def _no_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"
