"""YAML nodes that remember where they were written, and typed readers that collect problems.

Every config reader (the core's and each plug-in's `from_config`) reads through these helpers, so
every mistake becomes `FILE:LINE:COL: what is wrong (how to fix)` and all of them are reported at
once instead of stopping at the first.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from qos_agent.language.text import one_line, shown
from qos_agent.model import Location

Scalar = str | int | float | bool | None


@dataclass(slots=True)
class Node:
    """A YAML value with its location. Mappings keep each key's location too."""

    value: Any  # dict[str, Node] | list[Node] | Scalar
    loc: Location
    key_locs: dict[str, Location] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def get(self, key: str) -> Node | None:
        return self.value.get(key) if isinstance(self.value, dict) else None

    def key_loc(self, key: str) -> Location:
        return self.key_locs.get(key, self.loc)

    def items(self) -> Iterator[tuple[str, Node]]:
        if isinstance(self.value, dict):
            yield from self.value.items()

    def plain(self) -> Any:
        """The value without locations (for specs that keep raw structures)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value

    def strings(self) -> Iterator[tuple[str, Location]]:
        """Every string scalar below this node (for `{{ name }}` checks)."""
        if isinstance(self.value, dict):
            for v in self.value.values():
                yield from v.strings()
        elif isinstance(self.value, list):
            for v in self.value:
                yield from v.strings()
        elif isinstance(self.value, str):
            yield self.value, self.loc


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Location
    what: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.loc}: {self.what}" + (f" ({self.fix})" if self.fix else "")


class Problems:
    """Collects located problems; the loader raises once, with all of them."""

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.warnings: list[Problem] = []  # not errors: the file runs, but validate says so

    def add(self, loc: Location, what: str, fix: str = "") -> None:
        """One printable line each, bounded: a hostile value in the file cannot flood or break the output."""
        self.items.append(Problem(loc, one_line(what), one_line(fix, 200)))

    def warn(self, loc: Location, what: str, fix: str = "") -> None:
        self.warnings.append(Problem(loc, what, fix))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def sorted(self) -> list[Problem]:
        seen: set[str] = set()
        out = []
        for p in sorted(self.items, key=lambda p: (p.loc.file, p.loc.line, p.loc.col)):
            if str(p) not in seen:
                seen.add(str(p))
                out.append(p)
        return out


def suggest(word: str, choices: Iterable[str]) -> str:
    """`did you mean 'x'?` when a close choice exists, else the list of valid names."""
    choices = sorted(choices)
    close = difflib.get_close_matches(word[:100], choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid: " + ", ".join(choices)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


MIN_DURATION_S = 0.001  # 1ms: below it a duration is a typo, and a timer that small would spin
MAX_DURATION_S = 400 * 86400.0  # 400 days (a year of retention): above it a duration is a typo


def parse_duration(text: str) -> float | None:
    """'250ms' / '10s' / '5m' / '1h' -> seconds; None when it is not a duration."""
    m = _DURATION.match(text) if len(text) < 40 else None
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def parse_ratio(value: Scalar) -> float | None:
    """'99.5%' -> 0.995; a bare number 0..1 is taken as is."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int | float):
        v = float(value)
    else:
        text = value.strip()
        try:
            v = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except (ValueError, OverflowError):
            return None
    return v if 0.0 <= v <= 1.0 else None


def _human(secs: float) -> str:
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if secs >= size and (secs / size).is_integer():
            return f"{secs / size:g}{unit}"
    return f"{secs * 1000:g}ms"


class Reader:
    """Reads one mapping node: unknown keys, missing keys and wrong types become problems."""

    def __init__(self, node: Node, problems: Problems, allowed: Iterable[builtins.str], what: builtins.str,
                 required: Iterable[str] = ()) -> None:
        self.node = node
        self.problems = problems
        self.what = what
        self.ok = True
        if not node.is_map:
            self.ok = False
            problems.add(node.loc, f"{what} must be a mapping", "write it as 'key: value' lines")
            return
        allowed = set(allowed)
        for key in node.value:
            if key not in allowed:
                problems.add(node.key_loc(key), f"unknown key '{key}' in {what}", suggest(key, allowed))
        for key in required:
            if key not in node.value:
                problems.add(node.loc, f"{what} needs '{key}'", f"add '{key}: ...'")

    @classmethod
    def section(cls, node: Node | None, problems: Problems, allowed: Iterable[builtins.str], what: builtins.str,
                required: Iterable[str] = ()) -> Reader | None:
        """A Reader of an optional mapping (a step's `tcp:`, its `expect:`); None when it is absent or
        not a mapping (then the problem is reported), so the caller falls back to its defaults."""
        if node is None:
            return None
        r = cls(node, problems, allowed, what, required)
        return r if r.ok else None

    def has(self, key: builtins.str) -> builtins.bool:
        return self.ok and key in self.node.value

    def get(self, key: builtins.str) -> Node | None:
        return self.node.get(key) if self.ok else None

    def bad(self, key: builtins.str, n: Node, what: builtins.str, fix: builtins.str) -> None:
        self.problems.add(n.loc, f"'{key}' {what}", fix)

    def str(self, key: builtins.str, default: builtins.str = "") -> builtins.str:
        n = self.get(key)
        if n is None:
            return default
        if isinstance(n.value, str) and n.value != "":
            return n.value
        if isinstance(n.value, int | float) and not isinstance(n.value, bool):
            return str(n.value)
        self.bad(key, n, "must be a non-empty string", f"write e.g. {key}: some-text")
        return default

    def bool(self, key: builtins.str, default: builtins.bool = False) -> builtins.bool:
        n = self.get(key)
        if n is None:
            return default
        if isinstance(n.value, bool):
            return n.value
        if isinstance(n.value, str) and n.value.lower() in ("true", "false"):
            return n.value.lower() == "true"
        self.bad(key, n, "must be true or false", f"write {key}: true")
        return default

    def int(self, key: builtins.str, default: builtins.int, minimum: builtins.int = 0,
            maximum: builtins.int | None = None) -> builtins.int:
        n = self.get(key)
        if n is None:
            return default
        v = n.value
        if isinstance(v, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum or (maximum is not None and v > maximum):
            rng = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            self.bad(key, n, f"must be a whole number {rng}", f"write e.g. {key}: {max(default, minimum)}")
            return default
        return v

    def number(self, key: builtins.str, default: float | None, minimum: float | None = None,
               maximum: float | None = None) -> float | None:
        """A finite number (`.nan` and `.inf` are refused), within [minimum, maximum] when given."""
        n = self.get(key)
        if n is None:
            return default
        v = n.value
        if isinstance(v, str) and len(v) < 40:
            with contextlib.suppress(ValueError):
                v = float(v)
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.bad(key, n, "must be a number", f"write e.g. {key}: 1.5")
            return default
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f) or (minimum is not None and f < minimum) or (maximum is not None and f > maximum):
            rng = f"{minimum:g}..{maximum:g}" if minimum is not None and maximum is not None else (
                f">= {minimum:g}" if minimum is not None else f"<= {maximum:g}" if maximum is not None else "finite")
            self.bad(key, n, f"must be a number {rng}, not {shown(n.value)}", f"write e.g. {key}: 1.5")
            return default
        return f

    def duration(self, key: builtins.str, default: float, minimum: float = MIN_DURATION_S,
                 maximum: float = MAX_DURATION_S) -> float:
        """A duration in seconds between `minimum` and `maximum` (defaults: 1ms and a week)."""
        n = self.get(key)
        if n is None:
            return default
        secs = parse_duration(n.value) if isinstance(n.value, str) else None
        if secs is None:
            self.bad(key, n, f"is not a duration: {shown(n.value)}", "use a number and a unit: 250ms, 10s, 5m, 1h")
            return default
        if not minimum <= secs <= maximum:
            self.bad(key, n, f"is {shown(n.value)}, outside {_human(minimum)}..{_human(maximum)}",
                     f"write a duration between {_human(minimum)} and {_human(maximum)}")
            return default
        return secs

    def ratio(self, key: builtins.str, default: float) -> float:
        n = self.get(key)
        if n is None:
            return default
        v = parse_ratio(n.value)
        if v is None:
            self.bad(key, n, f"is not a ratio: {shown(n.value)}", "write a percentage such as 99.5%")
            return default
        return v

    def str_list(self, key: builtins.str) -> tuple[builtins.str, ...]:
        n = self.get(key)
        if n is None:
            return ()
        if isinstance(n.value, str):
            return (n.value,)
        if n.is_list and all(isinstance(i.value, str) for i in n.value):
            return tuple(i.value for i in n.value)
        self.bad(key, n, "must be a list of strings", f"write {key}: [a, b]")
        return ()

    def str_map(self, key: builtins.str) -> dict[builtins.str, builtins.str]:
        n = self.get(key)
        if n is None:
            return {}
        if not n.is_map:
            self.bad(key, n, "must be a mapping of names to values", f"write {key}: {{name: value}}")
            return {}
        out: dict[builtins.str, builtins.str] = {}
        for k, v in n.items():
            if isinstance(v.value, bool) or v.value is None or isinstance(v.value, dict | list):
                self.problems.add(v.loc, f"'{key}.{k}' must be a string or a number", f"write {k}: \"text\"")
            else:
                out[k] = str(v.value)
        return out

    def choice(self, key: builtins.str, choices: Iterable[builtins.str],
               default: builtins.str) -> builtins.str:
        value = self.str(key, default)
        choices = list(choices)
        n = self.get(key)
        if n is not None and value not in choices:
            self.bad(key, n, f"is '{value}', not one of {', '.join(choices)}", suggest(value, choices))
            return default
        return value
