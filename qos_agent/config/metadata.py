"""A journey's scorecard metadata: `owner`, `customer_reason`, `weight` (issue 26), read as tags.

The CX scorecard (`qos-agent report`) groups journeys by the customer reason they stand for, names
the team that owns each, and weighs disrupted minutes by the journey's share of customers. Those
facts must reach every sink (InfluxDB, SQLite, Prometheus labels), so they travel as journey tags
under reserved names (`model.JOURNEY_KEY_TAGS`); a `tags:` entry may not set them. The journey
parser calls `journey_metadata`; `keys.JOURNEY_KEYS` lists `KEYS`.
"""

from __future__ import annotations

import contextlib
import math

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.safety import TAG_VALUE_RULE, tag_value_problem
from qos_agent.language.text import shown

OWNER, CUSTOMER_REASON, WEIGHT = "owner", "customer_reason", "weight"
KEYS = (OWNER, CUSTOMER_REASON, WEIGHT)
EXAMPLES = {OWNER: "team-payments", CUSTOMER_REASON: '"pay for an order"', WEIGHT: "0.25"}


def format_weight(weight: float) -> str:
    """The weight as a tag value: short and stable (0.25, 1200, 1e-06), so a series keeps its name."""
    return f"{weight:g}"


def _text(r: Reader, key: str, problems: Problems) -> str:
    value = r.str(key, "")
    node = r.get(key)
    if node is None or not value:
        return ""
    why = tag_value_problem(value)
    if why:
        problems.add(node.loc, f"'{key}' {shown(value)} {why} (it becomes a tag value)",
                     f"{TAG_VALUE_RULE}; e.g. {key}: {EXAMPLES[key]}")
        return ""
    return value


def _weight(r: Reader, problems: Problems) -> str:
    node: Node | None = r.get(WEIGHT)
    if node is None:
        return ""
    value = node.value
    if isinstance(value, str) and len(value) < 40:
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(node.loc, f"'weight' must be a positive number, not {shown(node.value)}",
                     "its share of customers or traffic, e.g. weight: 0.25 (or weight: 1200 customers a minute)")
        return ""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number <= 0:
        problems.add(node.loc, f"'weight' must be a positive number, not {shown(node.value)}",
                     "its share of customers or traffic, e.g. weight: 0.25; leave it out to count 1")
        return ""
    return format_weight(number)


def journey_metadata(r: Reader, problems: Problems) -> dict[str, str]:
    """The journey's owner, customer_reason and weight as tags (absent keys are left out)."""
    if not r.ok:
        return {}
    found = {OWNER: _text(r, OWNER, problems), CUSTOMER_REASON: _text(r, CUSTOMER_REASON, problems),
             WEIGHT: _weight(r, problems)}
    return {k: v for k, v in found.items() if v}
