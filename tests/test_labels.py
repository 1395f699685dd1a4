"""One label-name rule: Prometheus series and Alertmanager alerts name a journey's tags alike, and
tags that cannot become labels (reserved, or two becoming one) are located errors at load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from exporters.alerts.config import AlertmanagerSpec
from qos_agent.config.loader import load_config
from qos_agent.config.schema import build_schema
from qos_agent.errors import ConfigError
from qos_agent.model import Point
from qos_agent.plugins import registry
from qos_agent.plugins.sinks import ExporterEnv
from qos_agent.sinks.labels import RESERVED, label_name, reserved_pattern, tag_problems
from qos_agent.sinks.series import JourneySeries

FILE = """\
version: 1
journeys:
  - name: j
    tags: {TAGS}
    steps:
      - name: s
        http: {{url: "http://127.0.0.1:1/x"}}
"""


def problems_of(tmp_path: Path, tags: str) -> list[str]:
    path = tmp_path / "journeys.yaml"
    path.write_text(FILE.format(TAGS=tags))
    try:
        load_config(path, env={})
    except ConfigError as e:
        return [str(p).removeprefix(f"{path}:") for p in e.problems]
    return []


def test_label_names_of_tags() -> None:
    assert label_name("tier-1") == "tier_1" and label_name("a.b") == "a_b" and label_name("team") == "team"
    assert label_name("1team") == "_1team" and label_name("_x") == "_x"
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label_name(t)) for t in ("x-y.z", "9", "é", ""))


def test_series_and_alerts_name_a_journey_tag_alike(tmp_path: Path) -> None:
    tags = (("agent", "a1"), ("journey", "checkout"), ("region", "eu-west"), ("state", "open"),
            ("1team", "x"), ("tier-1", "gold"), ("_under", "u"))
    point = Point("disruption", tags, (("reason", "2 consecutive failed runs"), ("uptime_ok", True),
                                       ("opened_ms", 1_700_000_000_000)), 1_700_000_000_000)
    series = JourneySeries()
    (_family, labels), *_ = series.observe(point)
    alert_sink = registry.exporter_class("alertmanager").create(
        AlertmanagerSpec(url="http://127.0.0.1:1", name="am"), ExporterEnv(tmp_path, "eu-west", "a1"))
    from exporters.alerts.event import DisruptionEvent

    event = DisruptionEvent.of(point)
    assert event is not None
    alert_labels = alert_sink.labels(event)  # type: ignore[attr-defined]
    own = {"_1team", "tier_1", "_under"}
    assert own <= {k for k, _ in labels} and own <= set(alert_labels)
    assert {k: v for k, v in labels if k in own} == {k: v for k, v in alert_labels.items() if k in own}


@pytest.mark.parametrize("tag", ["job", "instance", "alertname", "le", "quantile", "severity", "hidden_from_uptime",
                                 "hidden-from-uptime", "__name__", "_.x", "outcome", "lagged", "sink", "error",
                                 "phase"])
def test_a_reserved_tag_name_is_a_located_error(tag: str, tmp_path: Path) -> None:
    problems = problems_of(tmp_path, f'{{team: a, "{tag}": x}}')
    assert len(problems) == 1 and problems[0].startswith("4:21: tag "), problems
    assert "set themselves" in problems[0] and "(choose another tag name" in problems[0]


@pytest.mark.parametrize("tag", ["journey", "step", "region", "agent", "probe", "kind", "state"])
def test_the_agents_own_tags_keep_their_message(tag: str, tmp_path: Path) -> None:
    assert problems_of(tmp_path, f"{{{tag}: x}}") == [f"4:12: tag '{tag}' is set by the agent itself "
                                                      "(choose another tag name)"]


def test_tags_that_would_become_one_label_are_a_located_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '{"a.b": 1, team: x, "a-b": 2, "a_b": 3}')
    assert problems == ["4:31: tags 'a.b' and 'a-b' would both be the label 'a_b' (rename one of them: labels "
                        "allow letters, digits and '_' only)",
                        "4:41: tags 'a.b' and 'a_b' would both be the label 'a_b' (rename one of them: labels "
                        "allow letters, digits and '_' only)"]
    assert problems_of(tmp_path, '{"tier-1": gold, team: x}') == []


def test_the_schema_refuses_exactly_the_reserved_names() -> None:
    names = [*sorted(RESERVED), "hidden-from-uptime", "__x", "_-x", "job.x", "team", "tier-1", "_x", "Job", "lee"]
    tags = build_schema()["$defs"]["journey"]["properties"]["tags"]
    validator = Draft202012Validator({"$defs": build_schema()["$defs"], **tags})
    for name in names:
        refused = not validator.is_valid({name: "x"})
        assert refused == bool(tag_problems([name])), name
    assert re.compile(reserved_pattern()).search("job")  # the pattern is Python- and ECMA-compatible as written
