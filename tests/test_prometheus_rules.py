"""deploy/prometheus/rules.yml under promtool: valid, unit-tested, every alert firing and not firing; every
alert with a `for:`, a minimum-runs guard and its severity from the series; JourneyDisruption raised with
exactly the labels of the agents' Alertmanager sink."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from exporters.alerts.config import AlertmanagerSpec
from exporters.alerts.event import DEFAULT_SEVERITY as SINK_DEFAULT_SEVERITY
from exporters.alerts.event import DisruptionEvent
from qos_agent.model import Point
from qos_agent.plugins import registry
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.sinks.labels import DEFAULT_SEVERITY
from qos_agent.sinks.series import DISRUPTION_OPEN, JourneySeries
from tests.support.prometheus import PROMTOOL, RULES, needs_promtool

TESTS = sorted((RULES.parent / "tests").glob("*.yml"))


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is not installed (Debian prometheus; scripts/install-system-deps.sh)"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@needs_promtool
def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    check = promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    assert TESTS, "deploy/prometheus/tests/ holds the rule unit tests"
    run = promtool("test", "rules", *map(str, TESTS))
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_the_example_prometheus_config_is_valid() -> None:
    check = promtool("check", "config", str(RULES.parent / "prometheus.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 28 rules found" in check.stdout


@needs_promtool
def test_a_typo_in_a_rule_fails(tmp_path: Path) -> None:
    text = RULES.read_text()
    broken = tmp_path / "rules.yml"
    broken.write_text(text.replace("max without (instance, job) (qos_disruption_open)",
                                   "max without (instance, job (qos_disruption_open)", 1))
    assert broken.read_text() != text
    check = promtool("check", "rules", str(broken))
    assert check.returncode != 0 and "parse error" in (check.stdout + check.stderr)
    # A wrong metric name parses, but the unit tests catch it.
    renamed = tmp_path / "tests"
    renamed.mkdir()
    (tmp_path / "rules.yml").write_text(text.replace("qos_disruption_open", "qos_disruption_opn"))
    for t in TESTS:
        (renamed / t.name).write_text(t.read_text())
    run = promtool("test", "rules", *(str(renamed / t.name) for t in TESTS))
    assert run.returncode != 0 and "JourneyDisruption" in run.stdout + run.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {"JourneyDisruption", "JourneyFailingInManyRegions", "JourneyErrorBudgetBurn", "AgentDown",
                      "AgentNotScraped", "JourneyLatencyAboveObjective"}
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    assert firing == alerts, alerts - firing
    assert quiet >= alerts, alerts - quiet


def alert_rules() -> list[dict[str, object]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_waits_counts_runs_and_takes_its_severity_from_the_series() -> None:
    for rule in alert_rules():
        name, expr = str(rule["alert"]), str(rule["expr"])
        assert rule.get("for"), name
        labels = rule.get("labels") or {}
        assert isinstance(labels, dict)
        if name.startswith("Agent"):  # the scrape, not runs (rules.yml says why): a fixed severity
            assert labels.get("severity") == "page", name
            continue
        assert "severity" not in labels, f"{name} hard-codes its severity"
        if name == "JourneyDisruption":  # the series' own label; the agent's open_after is its guard
            assert "qos_disruption_open" in expr and "max without (instance, job)" in expr
            continue
        assert "group_left (severity)" in expr, name
        guards = ("qos_journey_runs:increase", "qos_journey_ontime_runs:increase5m", "qos_journey_failing_regions")
        assert any(g in expr for g in guards), f"{name} has no minimum-runs guard"


def test_the_series_default_severity_is_the_sinks() -> None:
    assert DEFAULT_SEVERITY == SINK_DEFAULT_SEVERITY


def opened(severity: str, uptime_ok: bool, tags: tuple[tuple[str, str], ...]) -> Point:
    fields: list[tuple[str, object]] = [("reason", "2 consecutive failed runs"), ("uptime_ok", uptime_ok),
                                        ("opened_ms", 1_700_000_000_000)]
    if severity:
        fields.append(("severity", severity))
    base = (("agent", "agent-ap"), ("journey", "checkout"), ("region", "ap-south"), ("state", "open"))
    return Point("disruption", tuple(sorted((*base, *tags))), tuple(fields), 1_700_000_000_000)  # type: ignore[arg-type]


CASES = {
    "page, tags, hidden": opened("page", True, (("team", "payments"), ("tier-1", "gold"))),
    "default severity, no tags, seen by uptime": opened("", False, ()),
}


@needs_promtool
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_rule_raises_the_sinks_alert_with_exactly_its_labels(case: str, tmp_path: Path) -> None:
    """The series the agent exposes for an open disruption, scraped (job, instance added), through
    rules.yml: the alert Prometheus raises has the label set the agents' Alertmanager sink posts, so
    Alertmanager keeps one alert when both routes are configured."""
    point = CASES[case]
    series = JourneySeries()
    series.observe(point)
    [labels] = [k for k, v in series.values[DISRUPTION_OPEN].items() if v == 1.0]
    sink = registry.exporter_class("alertmanager").create(
        AlertmanagerSpec(url="http://127.0.0.1:1", name="am"), ExporterEnv(tmp_path, "ap-south", "agent-ap"))
    event = DisruptionEvent.of(point)
    assert event is not None
    sink_labels = sink.labels(event)  # type: ignore[attr-defined]
    assert {**dict(labels), "alertname": "JourneyDisruption"} == sink_labels
    scraped = ",".join(f'{k}="{v}"' for k, v in (*labels, ("job", "qos-agent"), ("instance", "ap:9469")))
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": [{"series": "qos_disruption_open{" + scraped + "}", "values": "1x20"}],
            "alert_rule_test": [{
                "alertname": "JourneyDisruption", "eval_time": "2m",
                "exp_alerts": [{
                    "exp_labels": {k: v for k, v in sink_labels.items() if k != "alertname"},
                    "exp_annotations": {
                        "summary": "checkout is disrupted in ap-south (measured by agent-ap)",
                        "description": "The agent agent-ap in ap-south opened a disruption for checkout (hidden "
                                       f"from uptime monitoring: {sink_labels['hidden_from_uptime']}).",
                    },
                }],
            }],
        }],
    }
    path = tmp_path / "same_labels_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    run = promtool("test", "rules", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
