"""The browser step's language: both forms, located problems, `provides`; retention and scrubbing."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from probes.browser.artifacts import prune
from probes.browser.config import BrowserKind, BrowserSpec
from probes.browser.trace import scrub
from tests.support.probe_ctx import parse_step


def problems_of(text: str) -> list[str]:
    _, problems = parse_step("browser", text)
    return [str(p) for p in problems.sorted()]


def test_list_and_mapping_forms() -> None:
    listed, p1 = parse_step("browser", 'name: a\nbrowser:\n  - goto: "{{ base }}/"\n  - click: "text=Pay"\n')
    mapped, p2 = parse_step("browser", 'name: a\nbrowser:\n  actions:\n    - goto: "{{ base }}/"\n'
                            '    - click: {selector: "text=Pay", timeout: 2s}\n  fail_on_http_errors: true\n')
    assert not p1 and not p2
    assert isinstance(listed, BrowserSpec) and not listed.fail_on_http_errors
    assert [a.verb for a in listed.actions] == ["goto", "click"] and listed.actions[1].selector == "text=Pay"
    assert mapped.fail_on_http_errors and mapped.actions[1].timeout_s == 2.0
    assert mapped.actions[1].label == 'click "text=Pay"' and mapped.actions[1].index == 2


def test_extract_is_provided_for_later_steps() -> None:
    spec, problems = parse_step("browser", 'name: a\nbrowser:\n  - extract: {selector: "#o", name: order_id}\n')
    assert not problems and BrowserKind.provides(spec) == {"order_id"}


def test_problems_are_located_and_helpful() -> None:
    text = """name: a
browser:
  - clik: "#pay"
  - fill: {selector: "#card"}
  - wait_for: {selector: ".x", state: gone}
  - click: {timeout: 2s}
  - expect_text: {selector: ".s"}
  - expect_text: {selector: ".s", regex: "(unclosed"}
  - screenshot: "{{ user }}"
  - goto: {url: "/", wait_until: soon}
  - click: "#a"
    extra: 1
  - click: {selector: "#a", timeout: soon}
"""
    got = problems_of(text)
    expected = [
        "journeys.yaml:3:5: unknown browser action 'clik' (did you mean 'click'? valid: goto, click, fill,",
        "journeys.yaml:4:11: browser action 'fill' needs 'value'",
        "journeys.yaml:5:39: 'state' is 'gone', not one of visible, hidden, attached, detached",
        "journeys.yaml:6:12: browser action 'click' needs 'selector'",
        "journeys.yaml:7:18: browser action 'expect_text' needs exactly one of 'text' or 'regex'",
        "journeys.yaml:8:42: 'regex' is not a valid regular expression: missing ), unterminated",
        "journeys.yaml:9:17: 'name' is '{{ user }}', not a file name",
        "journeys.yaml:10:34: 'wait_until' is 'soon', not one of load, domcontentloaded, networkidle, commit",
        "journeys.yaml:11:5: browser action 9 must be a mapping with one action",
        "journeys.yaml:13:38: 'timeout' is not a duration: 'soon'",
    ]
    assert len(got) == len(expected), "\n".join(got)
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want), (line, want)


def test_empty_or_wrong_shapes() -> None:
    assert problems_of("name: a\nbrowser: []\n")[0].startswith("journeys.yaml:2:10: 'browser' needs a non-empty list")
    assert problems_of("name: a\nbrowser: {fail_on_http_errors: true}\n")[0].startswith(
        "journeys.yaml:2:10: browser needs 'actions'")
    assert problems_of('name: a\nbrowser: {actions: [{goto: "/"}], fail_on: 1}\n')[0].startswith(
        "journeys.yaml:2:35: unknown key 'fail_on' in browser (valid: actions, client_cert, client_key, "
        "fail_on_http_errors, proxy, trace, verify_tls)")


def test_retention_keeps_newest_runs_within_limits(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    for i in range(6):
        run = root / ("a" if i % 2 else "b") / f"r{i}"
        run.mkdir(parents=True)
        (run / "trace.zip").write_bytes(b"x" * 300_000)
        os.utime(run, (1000 + i, 1000 + i))
    assert prune(root, max_runs=4, max_mb=100) == 2
    assert sorted(p.name for p in root.glob("*/*")) == ["r2", "r3", "r4", "r5"]
    assert prune(root, max_runs=100, max_mb=0.7) == 2  # 4 x 0.29 MB -> 2 fit under 0.7 MB
    assert sorted(p.name for p in root.glob("*/*")) == ["r4", "r5"]


def test_scrub_masks_every_encoding_of_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("trace.network", '{"postData": "pw=a%20b%26c&x=a+b%26c", "v": "a b&amp;c"}')
        z.writestr("resources/1.dat", b"password=a b&c")
        z.writestr("clean.txt", b"nothing here")
    assert scrub(path, ["a b&c"]) == 2
    with zipfile.ZipFile(path) as z:
        data = {n: z.read(n) for n in z.namelist()}
    assert data["trace.network"] == b'{"postData": "pw=***&x=***", "v": "***"}'
    assert data["resources/1.dat"] == b"password=***" and data["clean.txt"] == b"nothing here"
