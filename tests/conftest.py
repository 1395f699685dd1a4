"""Shared fixtures: real servers on 127.0.0.1 (the demo SaaS, influxd, victoria-metrics)."""

import pytest

from tests.support.components import fail_if_missing

pytest_plugins = ["tests.support.demo", "tests.support.influx"]
# tests/image/ runs the built image: `make image-test` (after `make image`) names it; a plain run leaves it out.
collect_ignore = ["image"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    fail_if_missing(item)  # under CI=true a missing influxd/Chromium fails the test, never skips it
