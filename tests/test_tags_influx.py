"""Tags the loader accepts survive InfluxDB line protocol exactly (real influxd); those it cannot carry
are refused at load, located (issue 11: a tag key ending in `\\` had every point rejected with 400)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from qos_agent.config.loader import load_config
from qos_agent.delivery.points import journey_point
from qos_agent.errors import ConfigError
from qos_agent.model import JourneyResult, Outcome
from tests.support.influx import InfluxServer, influxd, make_exporter, needs_influxd

__all__ = ["influxd"]  # the fixture, imported for pytest

TRICKY = {  # valid but awkward: every character line protocol escapes, quotes, unicode, '#'
    "team": "pay, checkout=web",
    "oncall": 'say "hi" to ops',  # (`owner` is a journey key now, reserved as a tag: issue 26)
    "site": "eu west 1",
    "emoji": "café ☕ ünïcode",
    "misc": "#hash 'single' a=b,c=d",
    "url.path": "/api/v1?x=1&y=2",
    "_under": "x",
}
FILE = """\
version: 1
agent: {{region: "eu west", name: "agent, one"}}
journeys:
  - name: tags.check-1
    tags: {tags}
    steps:
      - name: s
        http: {{url: "http://127.0.0.1:1/x"}}
"""


def _flow(tags: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in tags.items()) + "}"


@needs_influxd
@pytest.mark.influx
async def test_accepted_tags_round_trip_through_influxd(influxd: InfluxServer, tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(FILE.format(tags=_flow(TRICKY)))
    config = load_config(path, env={})
    journey = config.journeys[0]
    assert dict(journey.tags) == TRICKY
    t = int(time.time() * 1000)
    result = JourneyResult(journey=journey.name, kind=journey.kind, region=config.agent.region,
                           agent=config.agent.name, run_id="r1", start_ms=t, outcome=Outcome.PASSED,
                           duration_ms=12.5, steps=[], tags=journey.tags)
    exp = make_exporter(tmp_path, {"url": influxd.url, "database": "qos"})
    await exp.write([journey_point(result)])
    await exp.close()
    assert exp.stats.exported == 1 and exp.stats.dead_letter == 0
    (row,) = influxd.rows('SELECT * FROM "journey"', "qos")
    assert {k: row[k] for k in TRICKY} == TRICKY
    assert (row["journey"], row["region"], row["agent"]) == ("tags.check-1", "eu west", "agent, one")


@pytest.mark.parametrize(("tags", "expected"), [
    ("{'team\\\\': x}", "5:12: tag name 'team\\\\' is not allowed"),
    ("{team: 'pay\\\\'}", "5:18: tag 'team' value 'pay\\\\' contains a backslash"),
    ("{team: ' pay'}", "5:18: tag 'team' value ' pay' starts or ends with a space"),
    ("{team: \"a\\u0000b\"}", "5:18: tag 'team' value 'a\\x00b' contains a control or invisible character"),
    ("{team: \"\\u202e\"}", "5:18: tag 'team' value '\\u202e' contains a control or invisible character"),
    ("{'a b': x}", "5:12: tag name 'a b' is not allowed"),
    ("{team: " + "x" * 300 + "}", "5:18: tag 'team' value"),
])
def test_tags_line_protocol_cannot_carry_are_refused(tmp_path: Path, tags: str, expected: str) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(FILE.format(tags=tags))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    messages = [str(p) for p in info.value.problems]
    assert any(m.startswith(f"{path}:{expected}") for m in messages), messages
