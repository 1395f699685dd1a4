"""JSON lines: one point per line (`Point.as_dict()`), for `jq`, log shippers and quick looks.

Appends to a file under state_dir (or stdout with `path: -`), flushed after every batch so a
reader tailing the file sees whole batches. The file is rotated once it reaches `max_mb`:
`x.jsonl` -> `x.jsonl.1` -> ... -> `x.jsonl.<keep>`, the oldest dropped.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, TextIO

from exporters.files.config import JsonlSpec
from qos_agent.model import Point
from qos_agent.plugins.sinks import Exporter


def encode(points: Sequence[Point]) -> str:
    return "".join(json.dumps(p.as_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
                   for p in points)


def rotate(path: Path, keep: int) -> None:
    """Shift `path` to `path.1` (and older ones up by one), keeping at most `keep` old files."""
    oldest = path.with_name(f"{path.name}.{keep}") if keep else path
    oldest.unlink(missing_ok=True)
    for i in range(keep - 1, 0, -1):
        src = path.with_name(f"{path.name}.{i}")
        if src.exists():
            src.replace(path.with_name(f"{path.name}.{i + 1}"))
    if keep and path.exists():
        path.replace(path.with_name(f"{path.name}.1"))


class JsonlExporter(Exporter):
    type: ClassVar[str] = "jsonl"

    def __init__(self, spec: JsonlSpec, stream: TextIO | None = None) -> None:
        self.spec = spec
        self._stream = stream  # stdout's stand-in in tests
        self._file: TextIO | None = None
        self._lock = asyncio.Lock()

    async def write(self, points: Sequence[Point]) -> None:
        if not points:
            return
        text = encode(points)
        async with self._lock:
            if self.spec.path is None:
                out = self._stream or sys.stdout
                out.write(text)
                out.flush()
            else:
                await asyncio.to_thread(self._append, self.spec.path, text)

    async def close(self) -> None:
        async with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _append(self, path: Path, text: str) -> None:
        if self._file is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        if os.fstat(self._file.fileno()).st_size >= self.spec.max_bytes:
            # Rotate before writing, so the current file always exists and holds the newest batch.
            self._file.close()
            self._file = None
            rotate(path, self.spec.keep)
            self._file = path.open("a", encoding="utf-8")
        self._file.write(text)
        self._file.flush()
