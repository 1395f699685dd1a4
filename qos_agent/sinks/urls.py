"""A sink's URL as it may be shown, and the parts of it that are credentials.

A Slack or Discord incoming webhook has its secret in the path, some receivers in the query
(`?token=`), and any URL may carry userinfo. So a webhook's URL is shown as `scheme://host/…`
only, and its path, query and their parts are masked in everything said about the sink.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from qos_agent.language.secrets import maskable


def host_only(url: str) -> str:
    """`scheme://host[:port]/…`: where a webhook goes, without the path and query that may be its secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if not parts.scheme or not host:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{tail}"


def without_userinfo(url: str) -> str:
    """The URL with any `user:password@` taken out (the path kept: for sinks whose path is no secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def url_secrets(url: str) -> list[str]:
    """What to mask of a URL whose path and query are secret: both whole, and each part long enough to mask."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url] if maskable(url) else []
    found = [url, parts.path, parts.query, parts.path.strip("/")]
    found += [p for p in parts.path.split("/") if p]
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    found += [unquote(v) for v in list(found)]
    if parts.password:
        found.append(unquote(parts.password))
    return sorted({s for s in found if s and maskable(s)}, key=len, reverse=True)
