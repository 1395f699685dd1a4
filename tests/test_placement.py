"""Placement: regions limit where a journey runs; shards split a region's journeys between agents."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from qos_agent.config.loader import load_config
from qos_agent.runloop.agent import Agent
from qos_agent.runloop.placement import select_journeys, shard_of
from tests.support.demo import DemoService

CONFIG = """\
version: 1
agent: {{state_dir: "{state}", interval: 300ms, name: "agent-{index}", shard: "{index}/3", listen: off}}
exporters: [{{type: sqlite, path: "{state}/shared.db"}}]
journeys:
{journeys}
"""
JOURNEY = """\
  - name: j{i:02d}
    steps:
      - name: health
        http: {{url: "{url}/health"}}
"""


def test_shards_are_stable_disjoint_and_cover_everything() -> None:
    names = [f"journey-{i}" for i in range(300)]
    shards = {n: shard_of(n, 3) for n in names}
    assert set(shards.values()) == {1, 2, 3}
    assert all(70 < list(shards.values()).count(k) < 130 for k in (1, 2, 3))  # roughly even
    assert shard_of("checkout", 3) == 3  # SHA-256 based: the same on every machine, process and release


async def test_three_agents_in_one_region_split_the_journeys(tmp_path: Path, demo_service: DemoService) -> None:
    journeys = "".join(JOURNEY.format(i=i, url=demo_service.url) for i in range(12))
    agents = []
    for index in (1, 2, 3):
        path = tmp_path / f"agent{index}.yaml"
        path.write_text(CONFIG.format(state=tmp_path, index=index, journeys=journeys))
        agents.append(Agent(load_config(path, env={}, region="eu-west")))
    selected = [{j.name for j in select_journeys(a.config.journeys, a.config.agent)} for a in agents]
    assert set().union(*selected) == {f"j{i:02d}" for i in range(12)}
    assert sum(len(s) for s in selected) == 12  # no journey on two agents
    await asyncio.gather(*(a.run(duration_s=1.5, handle_signals=False) for a in agents))
    ran: dict[str, set[str]] = defaultdict(set)
    with sqlite3.connect(tmp_path / "shared.db") as conn:
        for (tags,) in conn.execute("SELECT tags FROM points WHERE measurement = 'journey'"):
            t = json.loads(tags)
            ran[t["journey"]].add(t["agent"])
    assert set(ran) == set().union(*selected)  # every journey ran...
    assert all(len(by) == 1 for by in ran.values()), ran  # ...on exactly one agent
    for index, names in enumerate(selected, start=1):
        assert all(ran[n] == {f"agent-{index}"} for n in names)
