"""The evaluator's open disruptions on disk, so a restarted agent still knows them and closes them.

One small JSON file per agent, `state_dir/disruptions/<agent>.json`, rewritten whole only when a
disruption opens or closes (or its uptime verdict turns red), never per run: written to a temporary
file, then renamed over the old one, so it holds the old set or the new one, never half of one. The
evaluator writes it before it hands the open or close point to the sinks, so a `kill -9` can never
leave a sink told of a disruption the file does not hold. There is no fsync: a power cut may lose
the last change, as it may lose the spool's last commits (SQLite `synchronous=NORMAL`).

Besides the open disruptions it holds the close points of the last minutes and whether the agent
stopped cleanly (SIGTERM, after the sinks were flushed): after a `kill -9` those closes are announced
again, since one may have been lost between the file and a sink's spool.

A damaged or unreadable file is never a crash: it is logged once, moved aside
(`<agent>.json.corrupt-<unix ms>`, the newest KEEP_ASIDE kept) and the agent starts with none open.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qos_agent.language.text import one_line
from qos_agent.model import FieldValue, Point

log = logging.getLogger(__name__)

VERSION = 1
MAX_BYTES = 16 * 2**20  # thousands of open disruptions are well under a megabyte
KEEP_ASIDE = 3


@dataclass(slots=True)
class OpenEntry:
    """An open disruption as stored: the point that opened it and what changed since."""

    point: Point
    uptime_ok: bool | None
    hidden_ms: float


@dataclass(slots=True)
class Saved:
    open: list[OpenEntry] = field(default_factory=list)
    closed: list[Point] = field(default_factory=list)  # close points of the last minutes
    clean: bool = True  # the previous agent stopped cleanly (or there was none)


def file_for(state_dir: str | Path, agent: str) -> Path:
    """The agent's file: its name made safe for a path (agents may share a state_dir)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", agent).lstrip(".")
    if safe != agent or not safe:
        safe = f"{safe[:64]}-{hashlib.sha256(agent.encode()).hexdigest()[:8]}"
    return Path(state_dir) / "disruptions" / f"{safe}.json"


class DisruptionFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.failing = False  # the last write failed: logged once, retried with the next change

    def load(self) -> Saved:
        """What the previous agent left; nothing (logged, file moved aside) when it cannot be read."""
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return Saved()
        except OSError as e:
            return self._damaged(f"cannot be read: {e.strerror or type(e).__name__}")
        try:
            if len(data) > MAX_BYTES:
                raise ValueError(f"longer than {MAX_BYTES // 2**20} MB")
            return _parse(json.loads(data))
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            return self._damaged(f"is damaged ({one_line(e, 120)})")

    def save(self, saved: Saved) -> bool:
        """Replace the file atomically; False (logged once until a write succeeds) when it cannot be written."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(_dump(saved), separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            if not self.failing:
                log.error("cannot write the open disruptions to %s: %s (kept in memory; retried with the next "
                          "change; a restart before then would not know them)", self.path, e.strerror or e)
            self.failing = True
            return False
        if self.failing:
            log.warning("open disruptions written to %s again", self.path)
        self.failing = False
        return True

    def _damaged(self, why: str) -> Saved:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns() // 1_000_000}")
        try:
            os.replace(self.path, aside)
            where = f"moved aside to {aside.name}"
        except OSError as e:
            where = f"could not be moved aside: {e.strerror or e}"
        log.error("open disruptions file %s %s; %s; starting with no disruption open", self.path, why, where)
        for old in sorted(self.path.parent.glob(f"{self.path.name}.corrupt-*"))[:-KEEP_ASIDE]:
            with contextlib.suppress(OSError):
                old.unlink()
        return Saved()


def _dump(saved: Saved) -> dict[str, Any]:
    return {"version": VERSION, "clean": saved.clean,
            "open": [{"point": _point_json(e.point), "uptime_ok": e.uptime_ok, "hidden_ms": e.hidden_ms}
                     for e in saved.open],
            "closed": [_point_json(p) for p in saved.closed]}


def _point_json(p: Point) -> dict[str, Any]:
    return {"time_ms": p.time_ms, "tags": [list(t) for t in p.tags], "fields": [list(f) for f in p.fields]}


def _parse(raw: Any) -> Saved:
    """The file's content, checked strictly: anything unexpected raises (the file is then damaged)."""
    if not isinstance(raw, dict) or raw.get("version") != VERSION or not isinstance(raw.get("clean"), bool):
        raise ValueError("not an open-disruptions file of version 1")
    entries = []
    for item in _list(raw["open"]):
        uptime, hidden = item["uptime_ok"], item["hidden_ms"]
        if (uptime is not None and not isinstance(uptime, bool)) or not _number(hidden):
            raise ValueError("an open entry has a bad uptime_ok or hidden_ms")
        entries.append(OpenEntry(_point(item["point"], "open"), uptime, float(hidden)))
    closed = [_point(p, "close") for p in _list(raw["closed"])]
    return Saved(entries, closed, raw["clean"])


def _point(raw: Any, state: str) -> Point:
    if not isinstance(raw, dict) or not isinstance(raw["time_ms"], int) or isinstance(raw["time_ms"], bool):
        raise ValueError("a point without a time")
    tags = tuple(_pair(t, str) for t in _list(raw["tags"]))
    fields: tuple[tuple[str, FieldValue], ...] = tuple(_pair(f, (str, int, float, bool)) for f in _list(raw["fields"]))
    point = Point("disruption", tags, fields, raw["time_ms"])
    opened = point.field("opened_ms")
    if point.tag("state") != state or not point.tag("journey") or point.tag("region") is None or \
            not isinstance(point.field("reason"), str) or not isinstance(opened, int) or isinstance(opened, bool):
        raise ValueError(f"a {state} point without its journey, region, reason or opened_ms")
    return point


def _pair(raw: Any, kinds: type | tuple[type, ...]) -> tuple[str, Any]:
    if not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[0], str) or not isinstance(raw[1], kinds):
        raise ValueError("a tag or field is not a [name, value] pair")
    return raw[0], raw[1]


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise ValueError("a list was expected")
    return raw


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value and value >= 0
