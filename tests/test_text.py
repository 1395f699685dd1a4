"""Text for people (issue 11): one printable bounded line, values without reprs, a throttle for repeated
warnings, and problems printed without console markup or emoji by the real CLI."""

from __future__ import annotations

from pathlib import Path

from qos_agent.language.text import Throttle, one_line, shown
from tests.support.cli import qos


def test_one_line_escapes_controls_and_bounds_length() -> None:
    assert one_line("a\nb\r\tc\x1b[31m\u202e") == "a\\nb\\r\\tc\\x1b[31m\\u202e"
    assert one_line(b"\xff\x00ok") == "\\xff\\x00ok"
    long = one_line("x" * 10_000)
    assert len(long) <= 303 and long.endswith("...")
    assert one_line("café ☕ 😀") == "café ☕ 😀"


def test_shown_names_structures_by_kind() -> None:
    assert [shown(v) for v in ({"a": 1}, [1], None, True, 1.5, "x\ny")] == [
        "a mapping", "a list", "nothing (null)", "true", "1.5", "'x\\ny'"]


def test_throttle_one_line_per_key_per_minute_with_a_count() -> None:
    now = [0.0]
    throttle = Throttle(60.0, clock=lambda: now[0])
    assert throttle.allow("a") == ""
    assert throttle.allow("b") == ""
    for _ in range(99):
        now[0] += 0.1
        assert throttle.allow("a") is None
    now[0] = 61.0
    assert throttle.allow("a") == " (+99 more in the last 61s)"
    assert throttle.allow("a") is None
    now[0] = 200.0
    assert throttle.allow("a") == " (+1 more in the last 139s)"
    now[0] = 300.0
    assert throttle.allow("a") == ""  # nothing held back since the last line


def test_problems_print_without_emoji_or_markup(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    lines = ["version: 1"] + ["# :smile: [bold]filler[/bold]"] * 98 + [
        "agent: {intervall: 5s}",
        "journeys:",
        "  - name: '[red]j[/red]'",
        "    steps: [{name: s, http: {url: 'http://127.0.0.1:1/x'}}]",
    ]
    path.write_text("\n".join(lines) + "\n")
    r = qos("validate", str(path))
    assert r.returncode == 2, r.stderr
    problems = r.stderr.splitlines()
    assert problems[0].startswith(f"{path}:100:9: unknown key 'intervall' in agent"), problems
    assert problems[1].startswith(f"{path}:102:11: journey name '[red]j[/red]' has characters"), problems
    assert problems[-1] == "2 problems found"
    assert "💯" not in r.stderr
