"""`extract:` for every step kind, in the core: values for later steps from what a kind yields.

A kind declares what it yields (`Yields`: a body for `json`/`regex`, headers, cookies, named
fields); the loader refuses a source a kind does not yield; the probe hands over what the step got
(`StepResult.yielded`, and its `text` for `field`); the runner calls `extract` once the step has
passed. A value that is missing is an `extract` failure naming what was missing, never a blank.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass, Extraction, Outcome, StepResult, Yielded
from qos_agent.steps.jsondoc import MISSING, TOO_DEEP, TOO_DEEP_MESSAGE, as_text, compile_jsonpath, parse_json_body

if TYPE_CHECKING:
    import aiohttp


@lru_cache(maxsize=256)
def _jsonpath(expr: str) -> Any:
    return compile_jsonpath(expr)


@lru_cache(maxsize=256)
def _regex(expr: str) -> re.Pattern[str]:
    return re.compile(expr)


class _Sources:
    """One step's yield, the JSON parsed at most once however many extractions read it."""

    def __init__(self, got: Yielded, fields: dict[str, str], jar: aiohttp.abc.AbstractCookieJar) -> None:
        self.got = got
        self.fields = fields
        self.jar = jar
        self._doc: list[Any] = []

    def json(self) -> Any:
        if not self._doc:
            text = self.got.json_body if self.got.json_body is not None else self.got.body
            self._doc.append(parse_json_body(text))
        return self._doc[0]

    def cookie(self, name: str) -> str | None:
        """The cookie the next request to the step's URL would send, else any cookie of that name."""
        if self.got.url:
            from yarl import URL

            morsel = self.jar.filter_cookies(URL(self.got.url)).get(name)
            if morsel is not None:
                return morsel.value
        return next((m.value for m in self.jar if m.key == name), None)


def _one(ex: Extraction, src: _Sources) -> str:
    label = f"extract {ex.name} ({ex.source} {quoted(ex.expr)})"
    if ex.source == "json":
        try:
            path = _jsonpath(ex.expr)
        except ValueError as exc:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: bad JSONPath: {exc}") from None
        doc = src.json()
        if doc is MISSING:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: body is not JSON")
        if doc is TOO_DEEP:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: {TOO_DEEP_MESSAGE}")
        found = [m.value for m in path.find(doc)]
        if not found or found[0] is None:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: no value at that path")
        return as_text(found[0])
    if ex.source == "regex":
        m = _regex(ex.expr).search(src.got.body)
        if m is None:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: no match in the body")
        value = m.group(1) if m.re.groups else m.group(0)
        if value is None:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: group 1 did not take part in the match")
        return value
    if ex.source == "header":
        header = src.got.headers.get(ex.expr.lower())
        if header is None:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: header missing")
        return header
    if ex.source == "cookie":
        cookie = src.cookie(ex.expr)
        if cookie is None:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: no such cookie after the step")
        return cookie
    if ex.source == "field":
        value = src.fields.get(ex.expr)
        if value is None:
            raise StepFailure(ErrorClass.EXTRACT, f"{label}: the step reported no such field")
        return value
    raise StepFailure(ErrorClass.EXTRACT, f"{label}: unknown source")  # the loader refuses it first


def extract(extractions: tuple[Extraction, ...], result: StepResult, jar: aiohttp.abc.AbstractCookieJar) -> None:
    """Fill `result.extracted`, or fail the step with class `extract` (the first value missing)."""
    src = _Sources(result.yielded or Yielded(), result.text, jar)
    try:
        result.extracted = {ex.name: _one(ex, src) for ex in extractions}
    except StepFailure as exc:
        result.outcome, result.error, result.error_message = Outcome.FAILED, exc.error, exc.message
