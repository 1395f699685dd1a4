"""`extract:` of an HTTP step: values for later steps from the body (json, regex), a header, or a
cookie the conversation's jar now holds. A missing value is an `extract` failure, never a blank.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import aiohttp
from yarl import URL

from probes.common.assertions import MISSING, TOO_DEEP, TOO_DEEP_MESSAGE, as_text, compile_jsonpath
from qos_agent.language.text import shown as quoted
from qos_agent.model import Extraction


class ExtractError(Exception):
    """A value the step promised is not in the response."""


@lru_cache(maxsize=256)
def _jsonpath(expr: str) -> Any:
    return compile_jsonpath(expr)


@lru_cache(maxsize=256)
def _regex(expr: str) -> re.Pattern[str]:
    return re.compile(expr)


def _cookie(jar: aiohttp.abc.AbstractCookieJar, name: str, url: URL) -> str | None:
    """The cookie the next request to this URL would send, else any cookie of that name."""
    morsel = jar.filter_cookies(url).get(name)
    if morsel is not None:
        return morsel.value
    return next((m.value for m in jar if m.key == name), None)


def extract_one(
    ex: Extraction,
    *,
    text: str,
    json_doc: Callable[[], Any],
    headers: Mapping[str, str],
    jar: aiohttp.abc.AbstractCookieJar,
    url: URL,
) -> str:
    """The value of one extraction; raises ExtractError saying what was missing."""
    label = f"extract {ex.name} ({ex.source} {quoted(ex.expr)})"
    if ex.source == "json":
        try:
            path = _jsonpath(ex.expr)
        except ValueError as exc:
            raise ExtractError(f"{label}: bad JSONPath: {exc}") from None
        doc = json_doc()
        if doc is MISSING:
            raise ExtractError(f"{label}: body is not JSON")
        if doc is TOO_DEEP:
            raise ExtractError(f"{label}: {TOO_DEEP_MESSAGE}")
        found = [m.value for m in path.find(doc)]
        if not found or found[0] is None:
            raise ExtractError(f"{label}: no value at that path")
        return as_text(found[0])
    if ex.source == "header":
        value = headers.get(ex.expr.lower())
        if value is None:
            raise ExtractError(f"{label}: header missing")
        return value
    if ex.source == "regex":
        try:
            pattern = _regex(ex.expr)
        except re.error as exc:
            raise ExtractError(f"{label}: bad regular expression: {exc}") from None
        m = pattern.search(text)
        if m is None:
            raise ExtractError(f"{label}: no match in the body")
        value = m.group(1) if pattern.groups else m.group(0)
        if value is None:
            raise ExtractError(f"{label}: group 1 did not take part in the match")
        return value
    if ex.source == "cookie":
        cookie = _cookie(jar, ex.expr, url)
        if cookie is None:
            raise ExtractError(f"{label}: no such cookie after the response")
        return cookie
    raise ExtractError(f"{label}: unknown source (use json, header, regex or cookie)")


def extract_all(
    extractions: tuple[Extraction, ...],
    *,
    text: str,
    json_doc: Callable[[], Any],
    headers: Mapping[str, str],
    jar: aiohttp.abc.AbstractCookieJar,
    url: URL,
) -> dict[str, str]:
    return {
        ex.name: extract_one(ex, text=text, json_doc=json_doc, headers=headers, jar=jar, url=url)
        for ex in extractions
    }
