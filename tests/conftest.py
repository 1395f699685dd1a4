"""Shared fixtures: real servers on 127.0.0.1 (the demo SaaS, influxd, victoria-metrics)."""

pytest_plugins = ["tests.support.demo", "tests.support.influx"]
