"""One rule from a journey's tag names to label names, for every sink that speaks labels.

The Prometheus series (`/metrics`, remote write) and Alertmanager's alerts carry a journey's tags as
labels. A label name is `[A-Za-z_][A-Za-z0-9_]*`, so every other character becomes `_` and a
leading digit gets a `_` in front — the same everywhere. Two tags that would become one label, and
tags that would become a name the agent, Prometheus or Alertmanager set themselves (`job`,
`alertname`, `le`, `__name__`, the agent's own `journey`, `region`...), are refused when the file is
loaded (`check_tag_names`, located), so no sink has to rename or drop one at run time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from qos_agent.language.nodes import Node, Problems
from qos_agent.model import JOURNEY_KEY_TAGS, RESERVED_TAGS

LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BAD = re.compile(r"[^A-Za-z0-9_]")
# The labels the agent's own series and alerts carry besides the schema's tags (qos_agent/sinks/series.py).
AGENT_LABELS = frozenset({"outcome", "lagged", "error", "phase", "sink", "hidden_from_uptime", "severity"})
# Names Prometheus and Alertmanager give a meaning of their own.
PROMETHEUS_LABELS = frozenset({"job", "instance", "alertname", "le", "quantile"})
RESERVED = frozenset(RESERVED_TAGS) | AGENT_LABELS | PROMETHEUS_LABELS
RESERVED_RULE = "names starting with '__' and " + ", ".join(sorted(RESERVED))
# An alert's `severity` when the journey names none (`alert: {severity}`): the Alertmanager sink's label
# and the `severity` label of the series deploy/prometheus/rules.yml raises the same alerts from.
DEFAULT_SEVERITY = "warning"


def label_name(tag: str) -> str:
    """A tag's name as a label name: other characters become '_', a leading digit gets '_' in front."""
    name = _BAD.sub("_", tag) or "_"
    return "_" + name if name[0].isdigit() else name


def is_reserved(label: str) -> bool:
    """A label name the agent, Prometheus or Alertmanager set themselves."""
    return label in RESERVED or label.startswith("__")


def reserved_pattern() -> str:
    """An ECMA-262 regex matching every tag name whose label would be reserved (the JSON Schema's
    `propertyNames`); a collision between two tags is the loader's to find."""
    spelled = sorted(re.escape(name).replace("_", "[^A-Za-z0-9]") for name in RESERVED)
    return "^(?:" + "|".join(spelled) + ")$|^[^A-Za-z0-9][^A-Za-z0-9]"


def tag_problems(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{tag name: (what is wrong, fix)} for the tags of one journey that cannot become labels."""
    out: dict[str, tuple[str, str]] = {}
    first: dict[str, str] = {}
    for tag in names:
        label = label_name(tag)
        shown = f"tag '{tag}'" + (f" (label '{label}')" if label != tag else "")
        if tag in JOURNEY_KEY_TAGS:
            out[tag] = (f"tag '{tag}' is set by the agent itself",
                        f"write '{tag}: ...' on the journey itself, not under tags")
        elif tag in RESERVED_TAGS:
            out[tag] = (f"tag '{tag}' is set by the agent itself", "choose another tag name")
        elif is_reserved(label):
            out[tag] = (f"{shown} is a name the agent, Prometheus or Alertmanager set themselves",
                        f"choose another tag name (reserved: {RESERVED_RULE})")
        elif label in first:
            out[tag] = (f"tags '{first[label]}' and '{tag}' would both be the label '{label}'",
                        "rename one of them: labels allow letters, digits and '_' only")
        else:
            first[label] = tag
    return out


def check_tag_names(node: Node | None, problems: Problems) -> None:
    """The loader's check of a journey's `tags:` mapping: each refused name located at its key."""
    if node is None or not node.is_map:
        return
    for tag, (what, fix) in tag_problems(str(key) for key, _ in node.items()).items():
        problems.add(node.key_loc(tag), what, fix)
