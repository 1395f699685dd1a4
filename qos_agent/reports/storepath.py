"""Where the embedded SQLite store lives, as journeys.yaml says (or the default beside it)."""

from __future__ import annotations

from pathlib import Path

from exporters.sqlite import DEFAULT_PATH as DEFAULT_DB
from qos_agent.config.loader import load_config


def store_path(journeys_file: Path) -> Path:
    """The sqlite exporter's path in the file's config; `.qos-agent/qos-results.db` without a file."""
    if not journeys_file.exists():
        return Path(".qos-agent") / DEFAULT_DB
    config = load_config(journeys_file)
    for exporter in config.exporters:
        if exporter.type == "sqlite":
            return Path(str(exporter.spec.path))
    return Path(config.agent.state_dir) / DEFAULT_DB
