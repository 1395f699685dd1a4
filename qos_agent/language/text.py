"""Text a person reads: one line, printable, bounded; user values shown plainly, never as Python reprs.

Every problem line and every run-time error message passes through `one_line`, so a value pasted
from a hostile file or a hostile server (raw bytes, newlines, terminal escapes, 10 MB) cannot
break a log line, a terminal or a metrics point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

MESSAGE_LIMIT = 300  # characters in one problem or error message
VALUE_LIMIT = 60  # characters of a user's value quoted inside a message


def _printable(ch: str) -> str:
    """One character as a person can read it on one line: itself, or its escape (\\n, \\x1b, \\u202e)."""
    if ch.isprintable() or ch == " ":
        return ch
    if ch in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
    if ord(ch) < 0x100:
        return f"\\x{ord(ch):02x}"
    return f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"


def one_line(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """Control and invisible characters escaped (\\n, \\x1b, \\u202e), whitespace runs kept, cut at `limit`."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: limit * 4]).decode("utf-8", "backslashreplace")
    out: list[str] = []
    size = 0
    for ch in str(text):
        piece = _printable(ch)
        size += len(piece)
        if size > limit:
            out.append("...")
            break
        out.append(piece)
    return "".join(out)


EXCERPT_BYTES = 200  # a failure's body excerpt: the first 200 bytes of what the server answered


def excerpt(text: str, limit_bytes: int = EXCERPT_BYTES) -> str:
    """The start of a response for a person: one printable line (control characters escaped), at most
    `limit_bytes` of UTF-8, cut between characters."""
    out: list[str] = []
    size = 0
    for ch in text:
        piece = _printable(ch)
        size += len(piece.encode("utf-8"))
        if size > limit_bytes:  # never half a character, nor half an escape
            break
        out.append(piece)
    return "".join(out)


def shown(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A user's value inside a message: 'text' quoted, numbers as written, structures by their kind."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return one_line(value, limit)
    return "'" + one_line(value, limit) + "'"


class Throttle:
    """One log line per key per `every_s`, saying how many were held back: a warning that repeats
    every tick (a run still in flight, an exporter down) cannot flood the log."""

    MAX_KEYS = 10_000  # forgets everything past this many keys (bounded memory)

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.state: dict[str, tuple[float, int]] = {}  # key -> (last line's time, held back since)

    def allow(self, key: str) -> str | None:
        """None: hold this one back. Else a suffix for the line: '' or ' (+N more in the last 60s)'."""
        now = self.clock()
        last = self.state.get(key)
        if last is not None and now - last[0] < self.every_s:
            self.state[key] = (last[0], last[1] + 1)
            return None
        if len(self.state) >= self.MAX_KEYS:
            self.state.clear()
        self.state[key] = (now, 0)
        held = last[1] if last is not None else 0
        return f" (+{held} more in the last {now - last[0]:.0f}s)" if last is not None and held else ""
