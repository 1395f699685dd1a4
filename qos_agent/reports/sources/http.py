"""HTTP for the network sources: one GET or POST of JSON to the URL the user gave, nothing else.

No proxy from the environment (the report talks to exactly the given URL), bounded by a timeout;
every failure is one line naming the server (with any password in the URL masked), never a traceback.
"""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

from qos_agent.reports.errors import ReportError


def shown_url(url: str) -> str:
    """The URL as messages may show it: a password in it masked."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def split_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """`https://user:pass@host/` -> (`https://host/`, an Authorization header)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, {}
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    token = base64.b64encode(f"{urllib.parse.unquote(parts.username)}:"
                             f"{urllib.parse.unquote(parts.password or '')}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


def request_json(url: str, form: dict[str, str], *, what: str, base: str, headers: dict[str, str] | None = None,
                 timeout_s: float = 30.0, verify_tls: bool = True, post: bool = True) -> Any:
    """POST (or GET) `form` to `url` and decode the JSON answer; ReportError on any failure, naming
    the server by `base` (the URL the user gave)."""
    data = urllib.parse.urlencode(form)
    target, auth = split_userinfo(url)
    request = urllib.request.Request(target if post else f"{target}?{data}", data=data.encode() if post else None,
                                     method="POST" if post else "GET",
                                     headers={"Accept": "application/json", **auth, **(headers or {})})
    if post:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    context = ssl.create_default_context()
    if not verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    where = shown_url(base)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as e:
        detail = e.read()[:300].decode("utf-8", "replace").replace("\n", " ").strip()
        raise ReportError(f"{what} at {where} answered HTTP {e.code}: {detail or e.reason}") from None
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ReportError(f"cannot reach {what} at {where}: {reason}") from None
    try:
        return orjson.loads(body)  # answers of tens of MB (InfluxDB's durations): a third of json's time
    except orjson.JSONDecodeError:
        raise ReportError(f"{what} at {where} did not answer JSON (is it the right URL?)") from None
