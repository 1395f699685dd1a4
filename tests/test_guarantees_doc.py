"""docs/guarantees.md names, for every promise the docs make, the tests that hold it: each one named
there must exist (a renamed or deleted test would leave a promise held by nothing), and the README
links the page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"\b(test_\w+\.py)::(test_\w+)")


def test_every_test_the_guarantees_name_exists() -> None:
    text = (ROOT / "docs" / "guarantees.md").read_text()
    named = NAMED.findall(text)
    assert len(named) > 100, "the table names the tests that hold each promise"
    missing = [f"{f}::{t}" for f, t in named
               if not (ROOT / "tests" / f).exists()
               or not re.search(rf"^(async )?def {t}\(", (ROOT / "tests" / f).read_text(), re.MULTILINE)]
    assert missing == []
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert all(NAMED.search(row.rsplit("|", 2)[-2]) for row in rows), "a promise without a test is not made"


def test_the_readme_links_the_guarantees() -> None:
    assert "(docs/guarantees.md)" in (ROOT / "README.md").read_text()
