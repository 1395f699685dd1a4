"""expect conditions on their own: parsing with located problems, and evaluation semantics."""

from __future__ import annotations

from typing import Any

import pytest

from probes.common.assertions import (
    MISSING,
    Condition,
    check_headers,
    check_json,
    evaluate,
    parse_header_checks,
    parse_json_checks,
)
from qos_agent.language.nodes import Problems
from qos_agent.language.templating import render_deep
from qos_agent.language.yamlload import load_nodes

DOC = {"id": 42, "ok": True, "none": None, "name": "bob", "tags": ["a", "b"], "obj": {"k": 1},
       "price": "9.50", "items": [{"id": 1}, {"id": 2}]}
VARS = {"uid": "42", "pattern": "^b", "bad": "("}


def render(value: object) -> object:
    return render_deep(value, VARS)


def parse(kind: str, text: str) -> tuple[Any, list[str]]:
    problems = Problems()
    loaded = load_nodes(text, "j.yaml", {}, problems)
    assert loaded.root is not None
    fn = parse_json_checks if kind == "json" else parse_header_checks
    checks = fn(loaded.root, problems)
    return checks, [str(p) for p in problems.sorted()]


def json_failures(text: str) -> list[str]:
    checks, problems = parse("json", text)
    assert not problems, problems
    return check_json(checks, DOC, render)


@pytest.mark.parametrize("text", [
    '"$.id": {equals: 42, gt: 41, lt: 43, exists: true}',
    '"$.id": {equals: "{{ uid }}"}',  # a template renders to text; it still matches the number
    '"$.id": 42',  # a bare scalar means equals
    '"$.ok": {equals: true}',
    '"$.none": {exists: true, equals: null}',  # JSON null is present
    '"$.missing": {exists: false}',
    '"$.name": {matches: "{{ pattern }}", contains: o}',
    '"$.tags": {contains: b}',
    '"$.obj": {contains: k}',  # a key of an object
    '"$.price": {lt: 10, gt: 9}',  # numeric text compares as a number
    '"$.items[*].id": {contains: 2, equals: [1, 2]}',  # several matches: the list of them
    '"$.items[?(@.id > 1)].id": {equals: 2}',  # the extended grammar: filters
])
def test_conditions_that_hold(text: str) -> None:
    assert json_failures("{" + text + "}") == []


@pytest.mark.parametrize(("text", "message"), [
    ('"$.ok": {equals: 1}', "$.ok equals 1: got true"),  # true is not 1
    ('"$.id": {equals: "43"}', "$.id equals '43': got 42"),
    ('"$.obj": {contains: z}', "$.obj contains 'z': got {\"k\":1}"),
    ('"$.name": {matches: "{{ bad }}"}', "$.name matches '(': bad regular expression after rendering"),
    ('"$.id": {lt: "{{ name }}"}', "$.id lt '{{ name }}': '{{ name }}' is not a number"),
    ('"$.missing": {lt: 1}', "$.missing lt 1: got missing"),
])
def test_conditions_that_fail(text: str, message: str) -> None:
    failures = json_failures("{" + text + "}")
    assert len(failures) == 1 and failures[0].startswith(message), failures


def test_long_values_are_cut_short() -> None:
    msg = evaluate(Condition("equals", "x"), "y" * 500, "$.a", render)
    assert msg is not None and len(msg) < 120 and msg.endswith("...")


def test_headers_compare_as_text() -> None:
    checks, problems = parse("headers", "{X-Count: 5, x-kind: {contains: json, exists: true}, x-gone: {exists: false}}")
    assert not problems
    headers = {"x-count": "5", "x-kind": "application/json"}
    assert check_headers(checks, headers, render) == []
    assert check_headers(checks, {"x-count": "6", "x-gone": "1"}, render) == [
        "header X-Count equals 5: got '6'",
        "header x-kind contains 'json': got missing",
        "header x-kind exists: expected true, got missing",
        "header x-gone exists: expected false, got '1'",
    ]


def test_exists_reports_the_value_it_found() -> None:
    assert evaluate(Condition("exists", False), "v", "$.a", render) == "$.a exists: expected false, got 'v'"
    assert evaluate(Condition("exists", True), MISSING, "$.a", render) == "$.a exists: expected true, got missing"


@pytest.mark.parametrize(("kind", "text", "expected"), [
    ("json", '{"$..[": {exists: true}}', "j.yaml:1:2: bad JSONPath '$..['"),
    ("json", '{"$.a": {exists: maybe}}', "j.yaml:1:18: expect.json '$.a': 'exists' must be true or false"),
    ("json", '{"$.a": {}}', "j.yaml:1:9: expect.json '$.a' has no condition"),
    ("json", '{"$.a": [1]}', "j.yaml:1:9: expect.json '$.a' needs a condition map"),
    ("json", '{"$.a": {gt: 1, lt: x}}', "j.yaml:1:21: expect.json '$.a': 'lt' must be a number"),
    ("json", '{"$.a": {matches: "a)"}}', "j.yaml:1:19: expect.json '$.a': bad regular expression 'a)'"),
    ("json", "[1]", "j.yaml:1:1: 'expect.json' must map JSONPaths to conditions"),
    ("headers", "{a: {lt: 1}}", "j.yaml:1:6: unknown key 'lt' in expect.headers 'a'"),
    ("headers", "{a: [x]}", "j.yaml:1:5: expect.headers 'a' must be a string or a condition map"),
    ("headers", "{a: {matches: '['}}", "j.yaml:1:15: expect.headers 'a': bad regular expression '['"),
])
def test_parse_problems(kind: str, text: str, expected: str) -> None:
    _, problems = parse(kind, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_regex_with_a_template_is_compiled_per_run() -> None:
    checks, problems = parse("json", '{"$.name": {matches: "{{ pattern }}"}}')
    assert not problems and checks[0].conditions[0].pattern is None
    checks, _ = parse("json", '{"$.name": {matches: "^b"}}')
    assert checks[0].conditions[0].pattern is not None
