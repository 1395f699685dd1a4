"""deploy/prometheus/rules.yml under promtool: valid, unit-tested, every alert firing and not firing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

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
    assert "SUCCESS: 20 rules found" in check.stdout


@needs_promtool
def test_a_typo_in_a_rule_fails(tmp_path: Path) -> None:
    text = RULES.read_text()
    broken = tmp_path / "rules.yml"
    broken.write_text(text.replace("max by (journey, region, hidden_from_uptime) (qos_disruption_open)",
                                   "max by (journey, region, hidden_from_uptime (qos_disruption_open)", 1))
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
