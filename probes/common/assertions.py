"""`expect:` conditions on JSON values and headers: validated at load, evaluated per run.

A condition map (`{exists: true}`, `{equals: x}`, `{contains: x}`, `{matches: re}`, `{lt: n}`,
`{gt: n}`) is compiled once by `parse_checks` (JSONPath with jsonpath-ng's extended grammar,
regexes with `re`), so every syntax mistake is a located problem before the agent starts. Values may
hold `{{ name }}` templates; those are rendered per run and, for regexes, compiled then.

Failures are short sentences naming the condition and what was seen, e.g.
`$.token exists: expected true, got missing`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.templating import has_template
from qos_agent.language.text import shown as quoted
from qos_agent.steps.jsondoc import MISSING, TOO_DEEP, TOO_DEEP_MESSAGE, as_text, compile_jsonpath

OPS = ("exists", "equals", "contains", "matches", "lt", "gt")

Render = Callable[[object], object]


@dataclass(frozen=True, slots=True)
class Condition:
    op: str  # one of OPS
    value: Any  # bool / JSON value / regex text / number (or a template string)
    pattern: re.Pattern[str] | None = None  # compiled at load when the regex has no template


@dataclass(frozen=True, slots=True)
class Check:
    """All conditions on one JSONPath (json) or one header name (headers)."""

    target: str
    label: str  # how failures name it: "$.token" or "header content-type"
    conditions: tuple[Condition, ...]
    path: Any = None  # compiled JSONPath for json checks


def _number_ok(value: Any) -> bool:
    if isinstance(value, str):
        return has_template(value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _condition(op: str, n: Node, label: str, problems: Problems) -> Condition | None:
    value = n.plain()
    if op == "exists":
        if not isinstance(value, bool):
            problems.add(n.loc, f"{label}: 'exists' must be true or false", "write exists: true")
            return None
        return Condition(op, value)
    if op == "matches":
        if not isinstance(value, str) or value == "":
            problems.add(n.loc, f"{label}: 'matches' must be a regular expression", "write matches: '^ok'")
            return None
        if has_template(value):
            return Condition(op, value)
        try:
            return Condition(op, value, re.compile(value))
        except re.error as exc:
            problems.add(n.loc, f"{label}: bad regular expression {quoted(value)}: {exc}", "fix the pattern")
            return None
    if op in ("lt", "gt"):
        if not _number_ok(value):
            problems.add(n.loc, f"{label}: '{op}' must be a number", f"write {op}: 100")
            return None
        return Condition(op, value)
    return Condition(op, value)  # equals / contains: any JSON value


def _conditions(n: Node, label: str, problems: Problems, ops: tuple[str, ...]) -> tuple[Condition, ...]:
    """A condition map, or a bare scalar meaning `equals`."""
    if not n.is_map:
        if n.is_list or n.value is None:
            problems.add(n.loc, f"{label} needs a condition map", "write {exists: true} or {equals: value}")
            return ()
        return (Condition("equals", n.plain()),)
    Reader(n, problems, ops, label)
    out = []
    for op, sub in n.items():
        if op in ops:
            cond = _condition(op, sub, label, problems)
            if cond is not None:
                out.append(cond)
    if not n.value:
        problems.add(n.loc, f"{label} has no condition", "add one of " + ", ".join(ops))
    return tuple(out)


def parse_json_checks(node: Node, problems: Problems) -> tuple[Check, ...]:
    """`expect.json: {"$.path": {condition: value}}`."""
    if not node.is_map:
        problems.add(node.loc, "'expect.json' must map JSONPaths to conditions",
                     'write "$.token": {exists: true}')
        return ()
    checks = []
    for expr, sub in node.items():
        label = f"expect.json '{expr}'"
        try:
            path = compile_jsonpath(expr)
        except ValueError as exc:
            problems.add(node.key_loc(expr), f"bad JSONPath '{expr}': {exc}", "write e.g. $.data.items[0].id")
            continue
        conds = _conditions(sub, label, problems, OPS)
        if conds:
            checks.append(Check(expr, expr, conds, path))
    return tuple(checks)


def parse_header_checks(node: Node, problems: Problems) -> tuple[Check, ...]:
    """`expect.headers: {name: "exact" | {contains|equals|matches|exists: ...}}`."""
    if not node.is_map:
        problems.add(node.loc, "'expect.headers' must map header names to conditions",
                     "write content-type: {contains: json}")
        return ()
    ops = ("exists", "equals", "contains", "matches")
    checks = []
    for name, sub in node.items():
        label = f"expect.headers '{name}'"
        if isinstance(sub.value, bool) or not (sub.is_map or isinstance(sub.value, str | int | float)):
            problems.add(sub.loc, f"{label} must be a string or a condition map", "write {contains: json}")
            continue
        conds = _conditions(sub, label, problems, ops)
        if conds:
            checks.append(Check(name.lower(), f"header {name}", conds))
    return tuple(checks)


# ---------------------------------------------------------------------------------------------
# Evaluation (per run)
# ---------------------------------------------------------------------------------------------


def show(value: Any, limit: int = 80) -> str:
    if value is MISSING:
        return "missing"
    text = repr(value) if isinstance(value, str) else as_text(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _same(expected: Any, actual: Any) -> bool:
    """Equality across the text/JSON divide: a rendered template (always text) matches the JSON
    number or bool it spells, a number written in YAML matches a header (always text); but
    true never equals 1."""
    if isinstance(expected, str) != isinstance(actual, str):
        if isinstance(expected, dict | list) or isinstance(actual, dict | list):
            return False
        return as_text(expected) == as_text(actual)
    if isinstance(expected, bool) != isinstance(actual, bool):
        return False
    return bool(expected == actual)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def evaluate(cond: Condition, actual: Any, label: str, render: Render) -> str | None:
    """None when the condition holds, else what failed and what was seen."""
    op = cond.op
    if op == "exists":
        present = actual is not MISSING
        if present == cond.value:
            return None
        seen = show(actual) if present else "missing"
        return f"{label} exists: expected {str(cond.value).lower()}, got {seen}"
    expected = render(cond.value)
    head = f"{label} {op} {show(expected)}"
    if actual is MISSING:
        return f"{head}: got missing"
    if op == "equals":
        ok = _same(expected, actual)
    elif op == "contains":
        if isinstance(actual, str):
            ok = as_text(expected) in actual
        elif isinstance(actual, list):
            ok = any(_same(expected, item) for item in actual)
        elif isinstance(actual, dict):
            ok = as_text(expected) in actual
        else:
            ok = as_text(expected) in as_text(actual)
    elif op == "matches":
        pattern = cond.pattern
        if pattern is None:
            try:
                pattern = re.compile(str(expected))
            except re.error as exc:
                return f"{head}: bad regular expression after rendering: {exc}"
        ok = pattern.search(as_text(actual)) is not None
    else:  # lt / gt
        want, got = _number(expected), _number(actual)
        if want is None:
            return f"{head}: {show(expected)} is not a number"
        if got is None:
            return f"{head}: got {show(actual)} (not a number)"
        ok = got < want if op == "lt" else got > want
    return None if ok else f"{head}: got {show(actual)}"


def json_value(check: Check, doc: Any) -> Any:
    """The value at a JSONPath: one match as is, several as a list, none as MISSING."""
    matches = [m.value for m in check.path.find(doc)]
    if not matches:
        return MISSING
    return matches[0] if len(matches) == 1 else matches


def check_json(checks: tuple[Check, ...], doc: Any, render: Render) -> list[str]:
    if doc is TOO_DEEP:
        return [f"expect.json: {TOO_DEEP_MESSAGE}"]
    failures = []
    for check in checks:
        try:
            actual = json_value(check, doc)
        except RecursionError:
            return [f"expect.json: {TOO_DEEP_MESSAGE}"]
        for cond in check.conditions:
            if (msg := evaluate(cond, actual, check.label, render)) is not None:
                failures.append(msg)
    return failures


def check_headers(checks: tuple[Check, ...], headers: Mapping[str, str], render: Render) -> list[str]:
    """`headers` is a case-insensitive view of the response's headers (several values joined)."""
    failures = []
    for check in checks:
        actual: Any = headers.get(check.target, MISSING)
        for cond in check.conditions:
            if (msg := evaluate(cond, actual, check.label, render)) is not None:
                failures.append(msg)
    return failures
