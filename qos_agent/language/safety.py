"""What may be written where: names, tags, headers and `{{ }}` templates that survive the trip downstream.

A name becomes a tag value and an artifact path; a tag must survive InfluxDB line protocol; a header
must not smuggle a second header line; a `{{ }}` that is not a template would be sent literally.
These checks run at load, so a bad value is a located problem, not a failure at 3 a.m.
"""

from __future__ import annotations

import re

from qos_agent.language.nodes import Node, Problems
from qos_agent.language.templating import TEMPLATE
from qos_agent.language.text import shown

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # journeys, steps (fullmatch)
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
TAG_KEY_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or '_'"
TAG_VALUE_MAX = 256
TAG_VALUE_RULE = f"1-{TAG_VALUE_MAX} printable characters, no backslash, no leading or trailing space"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # RFC 9110 token
_HEADER_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls but tab (CR/LF would start a new header)


def name_ok(value: str) -> bool:
    return NAME.fullmatch(value) is not None


def tag_value_problem(value: str) -> str:
    """Why a tag value cannot be stored ('' when it can): InfluxDB line protocol has no escape for these."""
    if not value:
        return "is empty"
    if len(value) > TAG_VALUE_MAX:
        return f"is longer than {TAG_VALUE_MAX} characters"
    if "\\" in value:
        return "contains a backslash"
    if value != value.strip():
        return "starts or ends with a space"
    if not value.isprintable():
        return "contains a control or invisible character"
    return ""


def check_tags(node: Node | None, problems: Problems) -> None:
    """Tag keys and values of `tags:` (already read as a string map)."""
    if node is None or not node.is_map:
        return
    for key, value in node.items():
        if TAG_KEY.fullmatch(key) is None:
            problems.add(node.key_loc(key), f"tag name {shown(key)} is not allowed", TAG_KEY_RULE)
        if isinstance(value.value, str | int | float) and not isinstance(value.value, bool):
            why = tag_value_problem(str(value.value))
            if why:
                problems.add(value.loc, f"tag '{key}' value {shown(value.value)} {why}", TAG_VALUE_RULE)


def check_headers(node: Node | None, problems: Problems) -> None:
    """Header names are tokens; values have no control characters (CR/LF would inject a header)."""
    if node is None or not node.is_map:
        return
    for key, value in node.items():
        if _HEADER_NAME.fullmatch(key) is None:
            problems.add(node.key_loc(key), f"header name {shown(key)} is not a valid HTTP header name",
                         "use letters, digits and '-' (e.g. X-Request-Id)")
        if isinstance(value.value, str) and _HEADER_BAD.search(value.value):
            problems.add(value.loc, f"header '{key}' value contains a control character (a line break?)",
                         "a header value is one line: remove line breaks and control characters")


def template_problems(text: str) -> list[str]:
    """`{{` that does not open a `{{ name }}` template (unclosed, empty, bad name): one message each."""
    if "{{" not in text:
        return []
    covered = [m.span() for m in TEMPLATE.finditer(text)]
    out = []
    pos = text.find("{{")
    while pos != -1:
        if not any(a <= pos < b for a, b in covered):
            out.append(f"{shown(text[pos:pos + 30])} is not a template")
            if len(out) >= 3:
                break
        pos = text.find("{{", pos + 2)
    return out


def check_templates(node: Node | None, problems: Problems) -> None:
    if node is None:
        return
    for text, loc in node.strings():
        for what in template_problems(text):
            problems.add(loc, what, "write {{ name }}: a variable or extracted name between double braces")
