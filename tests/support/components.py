"""Real components a test needs (influxd, Chromium...): skipped on a laptop without them, FAILED in CI.

Under CI=true a missing component is a broken CI image, never a reason to skip: `needs(...)` then
marks the test `missing_component`, and tests/conftest.py fails it in setup with the reason.
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


def fail_if_missing(item: pytest.Item) -> None:
    mark = item.get_closest_marker("missing_component")
    if mark is not None:
        pytest.fail(f"{mark.args[0]} is not installed, and CI=true: a missing component fails, never skips "
                    "(run scripts/install-system-deps.sh)", pytrace=False)
