"""Reading the keys every network sink shares, with located errors: its URL, headers, spool name and bound.

One reading for all, so `name`, `max_spool_mb` and a bad URL are checked and worded alike whatever
the sink. A URL whose path is a credential (a webhook's) is never echoed: the message shows
scheme://host/… only (qos_agent/sinks/urls.py).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.safety import check_headers
from qos_agent.language.text import shown as quoted
from qos_agent.sinks.urls import host_only

SPOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
DEFAULT_SPOOL_MB = 512.0


def spool_name(r: Reader, problems: Problems, default: str) -> str:
    """`name:` (the durable store's file name: stable, so a restart replays what is left), or `default`."""
    name, node = r.str("name"), r.get("name")
    if node is not None and not SPOOL_NAME.match(name):
        problems.add(node.loc, f"'name' must be letters, digits, '.', '_' or '-': {quoted(name)}",
                     "write e.g. name: main")
    return name or default


def max_spool_mb(r: Reader, problems: Problems, default: float = DEFAULT_SPOOL_MB) -> float:
    """`max_spool_mb:`, more than 0 (a located error otherwise, and the default is used)."""
    value, node = r.number("max_spool_mb", default, maximum=1e6), r.get("max_spool_mb")
    if value is None or value <= 0:
        if node is not None:
            problems.add(node.loc, "'max_spool_mb' must be more than 0", f"write e.g. max_spool_mb: {default:g}")
        return default
    return value


def http_url(node: Node | None, url: str, problems: Problems, example: str, *, secret_path: bool = False,
             query: bool = True) -> str:
    """An http(s) URL with a host (and, unless `query`, no query or fragment), or a located problem.

    `secret_path`: the URL is shown as scheme://host/… in the message (a webhook's path is its secret)."""
    if node is None or not url:
        return url
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = urlsplit(""), False
    bad = parts.scheme not in ("http", "https") or not parts.hostname or not port_ok
    if not query and (parts.query or parts.fragment):
        bad = True
    if bad:
        why = "has no scheme" if "://" not in url else "is not an http(s) URL"
        if secret_path:  # never echoed: the path or the whole value may be the credential
            what = f"'url' ({host_only(url)}) {why}" if "://" in url else f"'url' {why}"
        else:
            what = f"'url' {why}: {quoted(url)}"
        problems.add(node.loc, what, f"write e.g. {example}")
    return url.rstrip("/")


def headers(r: Reader, problems: Problems, refused: frozenset[str] = frozenset(),
            fix: str = "leave it out") -> tuple[tuple[str, str], ...]:
    """`headers:` as sorted pairs: valid names, one-line values (CR/LF would inject a header), none of
    `refused` (lower-case names the sink sets itself), each a located problem."""
    node = r.get("headers")
    check_headers(node, problems)
    values = r.str_map("headers")
    for key in values:
        if key.lower() in refused:
            where = node.key_loc(key) if node is not None else r.node.loc
            problems.add(where, f"header '{key}' is set by the sink", fix)
    return tuple(sorted(values.items()))


def basic_auth(username: str, password: str) -> str:
    """The Authorization header value of HTTP basic auth (RFC 7617, UTF-8), built where it is sent."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
