"""Where the embedded SQLite store lives, as journeys.yaml says (or the default beside it).

`qos-agent report` runs where the agent's secrets are not set (a laptop, a CI job), so this reads
only what names the store: `agent.state_dir` and a sqlite exporter's `path`. The rest of the file
is not validated and its `${VAR}`s are not needed; a variable used by those two values is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from exporters.files.sqlite import DEFAULT_PATH as DEFAULT_DB
from qos_agent.errors import ConfigError
from qos_agent.language.nodes import Problem
from qos_agent.language.yamlload import ENV_REF
from qos_agent.model import Location

DEFAULT_STATE_DIR = ".qos-agent"


def store_path(journeys_file: Path) -> Path:
    """The sqlite exporter's path in the file's config; `.qos-agent/qos-results.db` without a file."""
    if not journeys_file.exists():
        return Path(DEFAULT_STATE_DIR) / DEFAULT_DB
    file = str(journeys_file)
    root = compose(journeys_file, "give the store with --db")
    agent = get(root, "agent")
    state_dir = Path(text(get(agent, "state_dir"), file) or DEFAULT_STATE_DIR)
    if not state_dir.is_absolute():
        state_dir = journeys_file.parent.resolve() / state_dir
    exporters = get(root, "exporters")
    items = exporters.value if isinstance(exporters, yaml.SequenceNode) else []
    for item in items:
        if text(get(item, "type"), file) == "sqlite":
            return state_dir / (text(get(item, "path"), file) or DEFAULT_DB)
    return state_dir / DEFAULT_DB


def keeps_a_store(journeys_file: Path) -> bool:
    """False when the file's `exporters:` leaves out sqlite: its agent writes no store to read."""
    if not journeys_file.exists():
        return True
    exporters = get(compose(journeys_file, "give the store with --db"), "exporters")
    if not isinstance(exporters, yaml.SequenceNode):
        return True  # no exporters: the embedded store is the default
    return any(isinstance(t := get(item, "type"), yaml.ScalarNode) and t.value == "sqlite" for item in exporters.value)


def compose(journeys_file: Path, fix: str) -> Any:
    """The file's YAML node tree (no `${VAR}` substituted yet); a located ConfigError when unreadable."""
    try:
        return yaml.compose(journeys_file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        raise ConfigError([Problem(Location(str(journeys_file), 1, 1),
                                   f"cannot read the file: {e}".splitlines()[0], fix)]) from None


def get(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def text(node: Any, file: str, purpose: str = "it names the store",
         fix: str = "or give the store with --db") -> str:
    """A scalar's text with `${VAR}` from the environment (a missing one is a located error)."""
    if not isinstance(node, yaml.ScalarNode):
        return ""
    loc = Location(file, node.start_mark.line + 1, node.start_mark.column + 1)

    def sub(m: Any) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return str(default)
        raise ConfigError([Problem(loc, f"environment variable {name} is not set ({purpose})",
                                   f"export {name}=... {fix}".strip())])

    return ENV_REF.sub(sub, str(node.value))
