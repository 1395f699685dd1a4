"""Fault knobs of the demo service: rules scoped to a path and a region, decided per request.

A rule says *where* (a path prefix or glob, and the calling agent's region, read from the
`X-QoS-Region` header every agent sends) and *what*: added latency, an error status (always, or
for a share of requests), or a broken JavaScript bundle. The book of rules is consulted on every
request, so it stays cheap: an empty book costs one length check.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

REGION_HEADER = "X-QoS-Region"
BUNDLE_PATH = "/static/app.js"
DEFAULT_ERROR_STATUS = 503
MAX_LATENCY_MS = 600_000.0

KEYS = ("path", "region", "latency", "status", "error_ratio", "break_bundle")
_GLOB = re.compile(r"[*?\[]")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_MS = {None: 1.0, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
# Paths a rule only reaches when it names them literally: the uptime check must stay green unless
# asked, and the admin endpoint must stay reachable to undo a fault.
_PROTECTED = ("/health", "/admin")


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault. `status` without `error_ratio` fails every matching request."""

    path: str = "*"
    region: str = "*"
    latency_ms: float = 0.0
    status: int | None = None
    error_ratio: float | None = None
    break_bundle: bool = False

    def __post_init__(self) -> None:
        if not (self.path == "*" or self.path.startswith("/")):
            raise ValueError(f"path {self.path!r} must start with '/' (a prefix or a glob such as /api/*)")
        if not self.region.strip():
            raise ValueError("region must be '*' or a region name")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency must be between 0 and {MAX_LATENCY_MS:.0f} ms")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status {self.status} must be an error status between 400 and 599")
        if self.error_ratio is not None and not 0.0 <= self.error_ratio <= 1.0:
            raise ValueError(f"error_ratio {self.error_ratio} must be between 0 and 1 (or 0%..100%)")
        if not (self.latency_ms or self.status or self.error_ratio is not None or self.break_bundle):
            raise ValueError("a fault needs at least one of latency, status, error_ratio, break_bundle")

    @property
    def fails(self) -> bool:
        return self.status is not None or self.error_ratio is not None

    def matches(self, path: str, region: str | None) -> bool:
        if self.region != "*" and (region is None or not fnmatchcase(region.lower(), self.region.lower())):
            return False
        if path in _PROTECTED or path.startswith("/admin/"):
            # Only a literal rule path inside the protected area reaches it.
            return not _GLOB.search(self.path) and self.path != "/" and _under(path, self.path)
        if _GLOB.search(self.path):
            return fnmatchcase(path, self.path)
        return _under(path, self.path)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "region": self.region}
        if self.latency_ms:
            out["latency"] = self.latency_ms
        if self.status is not None:
            out["status"] = self.status
        if self.error_ratio is not None:
            out["error_ratio"] = self.error_ratio
        if self.break_bundle:
            out["break_bundle"] = True
        return out


def _under(path: str, prefix: str) -> bool:
    """Prefix match on segment boundaries: /api/pay covers /api/pay/x but not /api/payments."""
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do to one request (a broken bundle is decided by the bundle's handler)."""

    latency_ms: float = 0.0
    status: int | None = None


NO_FAULT = Decision()


class FaultBook:
    """The rules in force, changed at run time; `seed` makes error ratios reproducible."""

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int | None = None) -> None:
        self._rules: dict[int, FaultRule] = {}
        self._next_id = 1
        self._rng = random.Random(seed)
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> int:
        """Add a rule; returns its id (for removal through the admin endpoint)."""
        rule_id = self._next_id
        self._next_id += 1
        self._rules[rule_id] = rule
        return rule_id

    def add_spec(self, spec: str) -> int:
        return self.add(parse_fault_spec(spec))

    def remove(self, rule_id: int) -> bool:
        return self._rules.pop(rule_id, None) is not None

    def clear(self) -> int:
        count = len(self._rules)
        self._rules.clear()
        return count

    def rules(self) -> list[tuple[int, FaultRule]]:
        return list(self._rules.items())

    def to_json(self) -> list[dict[str, object]]:
        return [{"id": rule_id, **rule.to_json()} for rule_id, rule in self._rules.items()]

    def __len__(self) -> int:
        return len(self._rules)

    def decide(self, path: str, region: str | None) -> Decision:
        """Latencies of matching rules add up; the first failing rule that fires sets the status."""
        if not self._rules:
            return NO_FAULT
        latency = 0.0
        status: int | None = None
        for rule in self._rules.values():
            if not (rule.latency_ms or rule.fails) or not rule.matches(path, region):
                continue
            latency += rule.latency_ms
            if status is None and rule.fails:
                ratio = 1.0 if rule.error_ratio is None else rule.error_ratio
                if ratio >= 1.0 or self._rng.random() < ratio:
                    status = rule.status or DEFAULT_ERROR_STATUS
        if not (latency or status):
            return NO_FAULT
        return Decision(latency, status)

    def breaks_bundle(self, path: str, region: str | None) -> bool:
        """Whether the bundle at `path` (normally /static/app.js) is served broken to this region."""
        return any(r.break_bundle and r.matches(path, region) for r in self._rules.values())


def rule_from_mapping(data: Mapping[str, object]) -> FaultRule:
    """A rule from JSON (admin endpoint) or from a parsed `--fault` spec; ValueError names the key."""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown fault key {unknown[0]!r} (valid keys: {', '.join(KEYS)})")
    try:
        return FaultRule(
            path=_text(data, "path", "*"),
            region=_text(data, "region", "*"),
            latency_ms=_latency(data.get("latency")),
            status=_status(data.get("status")),
            error_ratio=_ratio(data.get("error_ratio")),
            break_bundle=_flag(data.get("break_bundle")),
        )
    except TypeError as exc:  # a JSON value of the wrong type
        raise ValueError(str(exc)) from None


def parse_fault_spec(text: str) -> FaultRule:
    """Parse `path=/api/pay,region=ap-south,status=503` (the `--fault` flag)."""
    if not text.strip():
        raise ValueError("empty fault spec (expected key=value pairs such as path=/api/pay,status=503)")
    data: dict[str, object] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"fault spec {text!r}: {part.strip()!r} is not key=value")
        if key in data:
            raise ValueError(f"fault spec {text!r}: {key!r} given twice")
        data[key] = value.strip()
    try:
        return rule_from_mapping(data)
    except ValueError as exc:
        raise ValueError(f"fault spec {text!r}: {exc}") from None


def _text(data: Mapping[str, object], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string")
    return value.strip()


def _latency(value: object) -> float:
    """Milliseconds: a number, or a duration such as 250ms, 2s, 1m."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        raise ValueError("latency must be milliseconds or a duration such as 250ms or 2s")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1)) * _UNIT_MS[m.group(2)]
    raise ValueError(f"latency {value!r} is not milliseconds or a duration such as 250ms or 2s")


def _status(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"status {value!r} is not an HTTP status code such as 503")


def _ratio(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            pass
    raise ValueError(f"error_ratio {value!r} is not a number between 0 and 1 (or a percentage)")


def _flag(value: object) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"break_bundle {value!r} must be true or false")
