"""JSON bodies read one way by every step kind and by `extract:`: depth-bounded parsing (a hostile
body cannot make JSONPath recurse past the interpreter's limit), JSONPath compiled on first use
(jsonpath-ng's parser tables cost a few ms: never imported for a file without a path), and values
shown as a user reads JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

MISSING = object()  # the value at a path or header that is not there
TOO_DEEP = object()  # a body whose JSON nests deeper than MAX_JSON_DEPTH: never parsed
MAX_JSON_DEPTH = 100  # JSONPath evaluation recurses per level; real APIs nest a dozen levels
TOO_DEEP_MESSAGE = f"the body's JSON nests deeper than {MAX_JSON_DEPTH} levels"
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))


def compile_jsonpath(expr: str) -> Any:
    """A compiled JSONPath; raises ValueError with the parser's reason.

    jsonpath-ng (its parser tables) is imported on the first path, at load, never for a file without one."""
    from jsonpath_ng.ext.parser import parse as jsonpath_parse

    try:
        return jsonpath_parse(expr)
    except Exception as exc:  # jsonpath-ng raises several unrelated types
        raise ValueError(str(exc) or type(exc).__name__) from exc


def as_text(value: Any) -> str:
    """A value as text the way a user reads JSON: strings bare, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def json_depth_over(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests deeper than `limit` (brackets in strings do not count).

    No recursion and no Python loop per character: strings are cut out by `re`, everything but
    brackets by `bytes.translate`, then each round of `replace(b"()", b"")` peels one level; `limit`
    rounds leave a pair only when the text nests deeper.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    # Without escaped quotes, the text outside strings is every other piece between quotes (C speed).
    bare = "".join(text.split('"')[0::2]) if '\\"' not in text else _JSON_STRING.sub("", text)
    outside = bare.encode("utf-8", "replace")
    skeleton = outside.translate(_PARENS, _NOT_BRACKET)
    for _ in range(limit):
        peeled = skeleton.replace(b"()", b"")
        if len(peeled) == len(skeleton):
            return False
        skeleton = peeled
    return b"()" in skeleton


def parse_json_body(text: str) -> Any:
    """The body as JSON; MISSING when it is not JSON, TOO_DEEP past MAX_JSON_DEPTH levels."""
    if json_depth_over(text):
        return TOO_DEEP
    try:
        return json.loads(text)
    except RecursionError:
        return TOO_DEEP
    except ValueError:
        return MISSING
