"""Points -> InfluxDB line protocol, with influxdb-client's own escaping rules.

Why not `influxdb_client.Point(...).to_line_protocol()` per point: on this class of machine it costs
~40 µs a point (a loop of generic checks per field), which alone would cap export near 25,000
points/s and blow the spool's per-result budget. So `encode` calls the library's own escape
functions and translation tables (`_escape_key`, `_append_tags`, `_ESCAPE_STRING`, ...) and caches
what repeats — the measurement+tag-set prefix (tags are low-cardinality by design) and escaped field
keys — producing byte-for-byte what `Point.to_line_protocol()` does at `WritePrecision.MS`.
`encode_reference` is that library path; the tests check both agree on golden files and on random
points, so a library upgrade that changes escaping is caught, not silently diverged from.

Line-protocol facts worth knowing (the library's rules, kept): tags and fields are sorted by key;
empty tag values and NaN/inf/None fields are left out; a point left with no fields encodes to ""
(callers skip it); ints get the `i` suffix, floats drop a trailing `.0` (still floats to InfluxDB);
newlines in tag values become the two characters `\\n` (InfluxDB has no way to store them), while
newlines inside string fields are kept raw (legal inside quotes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from influxdb_client.client.write import point as _point_module
from influxdb_client.domain.write_precision import WritePrecision

from qos_agent.model import FieldValue, Point

_lp: Any = _point_module  # untyped library: one Any alias instead of ignores everywhere

_escape_key: Any = _lp._escape_key
_append_tags: Any = _lp._append_tags
_ESCAPE_MEASUREMENT: Any = _lp._ESCAPE_MEASUREMENT
_ESCAPE_STRING: Any = _lp._ESCAPE_STRING

_CACHE_LIMIT = 8192  # series prefixes / field keys kept; cleared whole when full (bounded memory)
_prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_keys: dict[str, str] = {}
_isfinite = math.isfinite


def _prefix(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    key = (measurement, tags)
    got = _prefixes.get(key)
    if got is None:
        if len(_prefixes) >= _CACHE_LIMIT:
            _prefixes.clear()
        got = _escape_key(measurement, _ESCAPE_MEASUREMENT) + _append_tags(dict(tags))
        _prefixes[key] = got
    return got


def _field(key: str, value: FieldValue) -> str | None:
    ek = _keys.get(key)
    if ek is None:
        if len(_keys) >= _CACHE_LIMIT:
            _keys.clear()
        ek = _keys[key] = _escape_key(key)
    cls = value.__class__
    if cls is str:
        text: str = value  # type: ignore[assignment]
        if '"' in text or "\\" in text:
            text = text.translate(_ESCAPE_STRING)
        return f'{ek}="{text}"'
    if cls is float:
        if not _isfinite(value):  # type: ignore[arg-type]
            return None
        r = str(value)
        return f"{ek}={r[:-2] if r.endswith('.0') else r}"
    if cls is bool:
        return f"{ek}=true" if value else f"{ek}=false"
    if cls is int:
        return f"{ek}={value}i"
    return _field_slow(key, value)


def _field_slow(key: str, value: Any) -> str | None:
    """Subclasses (an IntEnum, a str enum) and None take the library's own generic path."""
    out: str = _lp._append_fields({key: value}, {})
    return out or None


def encode(p: Point) -> str:
    """One point as one line of line protocol (time in ms); "" when it has no fields left."""
    parts = []
    for k, v in sorted(dict(p.fields).items()):  # a repeated key: the last wins, as in the library
        f = _field(k, v)
        if f is not None:
            parts.append(f)
    if not parts:
        return ""
    return f"{_prefix(p.measurement, p.tags)}{','.join(parts)} {int(p.time_ms)}"


def encode_many(points: Iterable[Point]) -> list[str]:
    """Lines for points, skipping those with no fields."""
    return [line for line in map(encode, points) if line]


def encode_reference(p: Point) -> str:
    """The library's own serializer, point by point: the truth `encode` is tested against."""
    ip = _lp.Point(p.measurement)
    for k, v in p.tags:
        ip.tag(k, v)
    for k, fv in p.fields:
        ip.field(k, fv)
    ip.time(int(p.time_ms), WritePrecision.MS)
    return str(ip.to_line_protocol())
