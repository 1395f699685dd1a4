"""Which journeys this agent runs: its region's, and, with `agent.shard`, its share of them.

Several agents in one region split the journeys by a stable hash of the journey name, so each
journey runs on exactly one of them and the split survives restarts and reloads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from qos_agent.model import AgentConfig, Journey


def shard_of(name: str, count: int) -> int:
    """1-based shard index of a journey name; stable across processes and Python versions."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select_journeys(journeys: Sequence[Journey], agent: AgentConfig) -> list[Journey]:
    chosen = [j for j in journeys if j.runs_in(agent.region)]
    if agent.shard is not None:
        index, count = agent.shard
        chosen = [j for j in chosen if shard_of(j.name, count) == index]
    return chosen
