"""The local sink types `sqlite`, `jsonl` and `junit`: their keys, located errors and JSON Schema.

Light to import, like every sink type: `create` imports the writer (exporters/files/sqlite.py,
jsonl.py, junit.py) only when something is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import Exporter, ExporterEnv, SinkType
from qos_agent.sinks.schemas import DURATION, PATH, Schema, entry, integer, positive

SQLITE_PATH = "qos-results.db"
DEFAULT_RETENTION_S = 30 * 86400.0
DEFAULT_SQLITE_MB = 1024.0
JSONL_PATH = "qos-results.jsonl"
JUNIT_PATH = "qos-junit.xml"
STDOUT = "-"
SQLITE_KEYS = ("type", "path", "retention", "max_mb")
JSONL_KEYS = ("type", "path", "max_mb", "keep")
JUNIT_KEYS = ("type", "path", "max_cases")


@dataclass(frozen=True, slots=True)
class SqliteSpec:
    path: Path
    retention_s: float = DEFAULT_RETENTION_S
    max_bytes: int = int(DEFAULT_SQLITE_MB * 1024 * 1024)  # past it the oldest points go (exporters/files/sizebound.py)


@dataclass(frozen=True, slots=True)
class JsonlSpec:
    path: Path | None  # None: stdout
    max_bytes: int = 100 * 1024 * 1024
    keep: int = 3


@dataclass(frozen=True, slots=True)
class JunitSpec:
    path: Path
    max_cases: int = 10_000


def positive_mb(r: Reader, key: str, default: float) -> float:
    """A size in megabytes, more than 0 (a located error otherwise, and the default is used)."""
    value = r.number(key, default, maximum=1e6)
    if value is None or value <= 0:
        n = r.get(key)
        if n is not None:
            r.bad(key, n, "must be a positive number of megabytes", f"write e.g. {key}: {default:g}")
        return default
    return value


class SqliteType(SinkType[SqliteSpec]):
    """The embedded default store that `qos-agent report` reads."""

    type: ClassVar[str] = "sqlite"

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> SqliteSpec:
        r = Reader(node, problems, SQLITE_KEYS, "sqlite exporter")
        path = Path(r.str("path", SQLITE_PATH))
        max_mb = positive_mb(r, "max_mb", DEFAULT_SQLITE_MB)
        return SqliteSpec(path=load.state_dir / path, retention_s=r.duration("retention", DEFAULT_RETENTION_S),
                          max_bytes=max(1, int(max_mb * 1024 * 1024)))

    @classmethod
    def json_schema(cls) -> Schema:
        return entry(SQLITE_KEYS, {"path": PATH, "retention": DURATION, "max_mb": positive(1e6)})

    @classmethod
    def create(cls, spec: SqliteSpec, env: ExporterEnv) -> Exporter:
        from exporters.files.sqlite import SqliteExporter

        return SqliteExporter(spec)


class JsonlType(SinkType[JsonlSpec]):
    """JSON lines, one point per line, rotated by size."""

    type: ClassVar[str] = "jsonl"

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> JsonlSpec:
        r = Reader(node, problems, JSONL_KEYS, "jsonl exporter")
        path = r.str("path", JSONL_PATH)
        max_mb = positive_mb(r, "max_mb", 100.0)
        keep = r.int("keep", 3, minimum=0, maximum=1000)
        return JsonlSpec(path=None if path == STDOUT else load.state_dir / path,
                         max_bytes=max(1, int(max_mb * 1024 * 1024)), keep=keep)

    @classmethod
    def json_schema(cls) -> Schema:
        return entry(JSONL_KEYS, {"path": PATH, "max_mb": positive(1e6), "keep": integer(0, 1000)})

    @classmethod
    def create(cls, spec: JsonlSpec, env: ExporterEnv) -> Exporter:
        from exporters.files.jsonl import JsonlExporter

        return JsonlExporter(spec)


class JunitType(SinkType[JunitSpec]):
    """JUnit XML: every final journey run as a test case."""

    type: ClassVar[str] = "junit"

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> JunitSpec:
        r = Reader(node, problems, JUNIT_KEYS, "junit exporter")
        path = r.str("path", JUNIT_PATH)
        return JunitSpec(path=load.config_dir / path, max_cases=r.int("max_cases", 10_000, minimum=1))

    @classmethod
    def json_schema(cls) -> Schema:
        return entry(JUNIT_KEYS, {"path": PATH, "max_cases": integer(1)})

    @classmethod
    def create(cls, spec: JunitSpec, env: ExporterEnv) -> Exporter:
        from exporters.files.junit import JunitExporter

        return JunitExporter(spec)
