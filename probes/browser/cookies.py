"""One conversation: the run's aiohttp cookie jar and its browser context hold the same cookies.

Before a browser step the jar's cookies replace the context's; after it the context's replace the
jar's. Between steps the jar is the truth, so a cookie an HTTP step set (or deleted) is what the
browser sees, and one the page set (or deleted) is what later HTTP steps send. Domain (host-only or
not), path, expiry, Secure, HttpOnly and SameSite survive the trip both ways.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from http.cookies import Morsel
from typing import Any

import aiohttp
from playwright.async_api import BrowserContext
from yarl import URL

Key = tuple[str, str, str, str, bool, bool, str, int]  # a cookie's identity and attributes
SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


def _expires(m: Morsel[str]) -> float:
    """Absolute expiry in epoch seconds, -1 for a session cookie."""
    if m["max-age"]:
        try:
            return time.time() + int(m["max-age"])
        except ValueError:
            pass
    if m["expires"]:
        try:
            return parsedate_to_datetime(m["expires"]).timestamp()
        except (TypeError, ValueError):
            pass
    return -1


def jar_cookies(jar: aiohttp.CookieJar) -> list[dict[str, Any]]:
    """The jar as Playwright cookies (a leading dot marks a domain cookie, as Playwright wants)."""
    host_only = jar.host_only_cookies
    out = []
    for m in jar:
        domain, path = m["domain"], m["path"] or "/"
        if not domain:
            continue
        cookie: dict[str, Any] = {
            "name": m.key, "value": m.value, "path": path,
            "domain": domain if (domain, path.rstrip("/"), m.key) in host_only else "." + domain,
            "expires": _expires(m), "httpOnly": bool(m["httponly"]), "secure": bool(m["secure"]),
        }
        same_site = SAME_SITE.get(str(m["samesite"]).lower())
        if same_site and (same_site != "None" or cookie["secure"]):
            cookie["sameSite"] = same_site
        out.append(cookie)
    return out


def fill_jar(jar: aiohttp.CookieJar, cookies: list[dict[str, Any]]) -> None:
    """Replace the jar's content with these Playwright cookies."""
    jar.clear()
    now = time.time()
    for c in cookies:
        expires = float(c.get("expires", -1))
        if 0 <= expires <= now:
            continue
        raw_domain = str(c["domain"])
        host = raw_domain.lstrip(".")
        m: Morsel[str] = Morsel()
        m.set(c["name"], c["value"], c["value"])
        m["path"] = c.get("path") or "/"
        if raw_domain.startswith("."):
            m["domain"] = host
        if expires > 0:
            m["max-age"] = str(max(1, int(expires - now)))
        if c.get("secure"):
            m["secure"] = True
        if c.get("httpOnly"):
            m["httponly"] = True
        if c.get("sameSite"):
            m["samesite"] = c["sameSite"]
        scheme = "https" if c.get("secure") else "http"
        jar.update_cookies({c["name"]: m}, response_url=URL.build(scheme=scheme, host=host, path=m["path"]))


def fingerprint(cookies: list[dict[str, Any]]) -> frozenset[Key]:
    return frozenset((c["name"], c["value"], c["domain"], c.get("path", "/"), bool(c.get("secure")),
                      bool(c.get("httpOnly")), str(c.get("sameSite", "")), int(float(c.get("expires", -1)) > 0))
                     for c in cookies)


class CookieBridge:
    """Per run: copies cookies jar -> context before a step and context -> jar after it."""

    def __init__(self, jar: aiohttp.CookieJar, context: BrowserContext) -> None:
        """`context`: made for this run, so it holds no cookies yet (a run whose jar is empty when its
        first browser step starts makes no round trip to the browser for cookies then)."""
        self.jar = jar
        self.context = context
        self._last: frozenset[Key] = frozenset()  # what the context and jar agreed on last

    async def to_browser(self) -> None:
        cookies = jar_cookies(self.jar)
        fp = fingerprint(cookies)
        if fp == self._last:
            return  # nothing changed since the last browser step: skip two round trips
        await self.context.clear_cookies()
        if cookies:
            await self.context.add_cookies(cookies)  # type: ignore[arg-type]
        self._last = fp

    async def merge_to_jar(self) -> None:
        """Both sides changed since they last agreed (a script's own HTTP calls beside its page): the
        jar's new or changed cookies go to the browser first, then the browser's cookies become the jar's."""
        changed = [c for c in jar_cookies(self.jar) if not fingerprint([c]) <= self._last]
        if changed:
            await self.context.add_cookies(changed)  # type: ignore[arg-type]
        await self.to_jar()

    async def to_jar(self) -> None:
        cookies = [dict(c) for c in await self.context.cookies()]
        fill_jar(self.jar, cookies)
        self._last = fingerprint(jar_cookies(self.jar))
