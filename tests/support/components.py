"""Real components a test needs (influxd, Chromium...): skipped on a laptop without them, FAILED in CI.

The one CI rule of the suite, used everywhere: `CI` is set when the environment variable CI is 1,
true or yes (any case). Under CI a missing component is a broken CI machine, never a reason to skip:
`needs(...)` marks the test `missing_component` (tests/conftest.py fails it in setup with the reason),
and `missing(...)`, for code that finds out while running, fails at once.
"""

from __future__ import annotations

import os

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def needs(present: bool, what: str) -> pytest.MarkDecorator:
    """A mark: run when `present`; otherwise skip (locally) or fail (CI=true), naming `what`."""
    if present:
        return pytest.mark.skipif(False, reason="")
    if CI:
        return pytest.mark.missing_component(what)
    return pytest.mark.skipif(True, reason=f"{what} is not installed (under CI=true this fails)")


def missing(what: str, fix: str = "run scripts/install-system-deps.sh") -> None:
    """A component found missing while a test runs: fail under CI, skip elsewhere (never returns)."""
    if CI:
        pytest.fail(f"{what} is not installed, and CI is set: a missing component fails, never skips ({fix})",
                    pytrace=False)
    pytest.skip(f"{what} is not installed (under CI this fails)", allow_module_level=True)


def fail_if_missing(item: pytest.Item) -> None:
    mark = item.get_closest_marker("missing_component")
    if mark is not None:
        pytest.fail(f"{mark.args[0]} is not installed, and CI=true: a missing component fails, never skips "
                    "(run scripts/install-system-deps.sh)", pytrace=False)
