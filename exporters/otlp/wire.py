"""A run's spans written as OTLP protobuf bytes directly: the `otlp` sink's hot path.

Varints and length-delimited fields (qos_agent/sinks/protowire.py, which remote write's samples use too), because
building opentelemetry-proto's message objects per attribute in Python cost ~85 % of the spool
thread's CPU per run. The bytes are those of `exporters/otlp/reference.py`'s `SerializeToString()`
(tests/test_otlp_encoding.py checks it on fixed and seeded runs).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from exporters.otlp.spans import SCOPE, Attrs, SpanData, run_spans
from qos_agent.model import FieldValue, Point
from qos_agent.sinks.protowire import SMALL, field, varint

# Field tags ((number << 3) | wire type) of opentelemetry-proto 1.x; proto3 leaves a singular field at
# its default (0, b"", "") out, a set message field or oneof member is always written, fields go in
# field-number order: what protobuf's serializer does.

_Q = struct.Struct("<Q").pack  # fixed64
_D = struct.Struct("<d").pack  # double
_INT64 = 1 << 63
_STATUS_UNSET = b"\x7a\x00"  # Span.status (15): a Status with every field at its default
_KEYS: dict[str, bytes] = {}  # KeyValue.key (1) of each attribute name, written once
_STR_HEAD = [bytes((0x12, n + 2, 0x0a, n)) for n in range(126)]  # value (2): string_value (1) of n < 126 bytes
_RESOURCES: dict[tuple[tuple[str, FieldValue], ...], bytes] = {}


def _key(k: str) -> bytes:
    kb = _KEYS.get(k)
    if kb is None:
        if len(_KEYS) > 4096:  # qos.tag.* names come from journeys' tags: bounded all the same
            _KEYS.clear()
        kb = _KEYS[k] = field(b"\x0a", k.encode())
    return kb


def _kv(tag: bytes, attrs: Attrs) -> bytes:
    """Repeated KeyValue under field `tag`: key (1), value (2) an AnyValue, whose oneof member is
    string_value (1), bool_value (2), int_value (3, int64) or double_value (4)."""
    out = []
    for k, v in attrs:
        if v.__class__ is str:
            text = v.encode()
            value = _STR_HEAD[len(text)] + text if len(text) < 126 else field(b"\x12", field(b"\x0a", text))
        elif isinstance(v, bool):
            value = b"\x12\x02\x10\x01" if v else b"\x12\x02\x10\x00"
        elif isinstance(v, int):
            if not -_INT64 <= v < _INT64:
                raise ValueError(f"attribute {k}: {v} is out of int64 range")
            value = field(b"\x12", b"\x18" + varint(v))
        elif isinstance(v, float):
            value = b"\x12\x09\x21" + _D(v)
        else:  # a str subclass, or another type: as the reference writes it (str(v))
            value = field(b"\x12", field(b"\x0a", str(v).encode()))
        kv = _key(k) + value
        n = len(kv)
        out.append(tag + (SMALL[n] if n < 128 else varint(n)) + kv)
    return b"".join(out)


def _span(d: SpanData) -> bytes:
    """Span: trace_id (1), span_id (2), parent_span_id (4), name (5), kind (6), start (7) and end (8)
    fixed64, attributes (9), events (11), links (13), status (15)."""
    parts = [field(b"\x0a", d.trace_id) if d.trace_id else b"", field(b"\x12", d.span_id) if d.span_id else b"",
             field(b"\x22", d.parent_span_id) if d.parent_span_id else b"",
             field(b"\x2a", d.name.encode()) if d.name else b"", b"\x30" + varint(d.kind) if d.kind else b"",
             b"\x39" + _Q(d.start) if d.start else b"", b"\x41" + _Q(d.end) if d.end else b"",
             _kv(b"\x4a", d.attributes)]
    for at, name, attrs in d.events:  # Event: time_unix_nano (1) fixed64, name (2), attributes (3)
        event = (b"\x09" + _Q(at) if at else b"") + (field(b"\x12", name.encode()) if name else b"")
        parts.append(field(b"\x5a", event + _kv(b"\x1a", attrs)))
    for trace_id, span_id, attrs in d.links:  # Link: trace_id (1), span_id (2), attributes (4)
        link = (field(b"\x0a", trace_id) if trace_id else b"") + (field(b"\x12", span_id) if span_id else b"")
        parts.append(field(b"\x6a", link + _kv(b"\x22", attrs)))
    if d.error is None:
        parts.append(_STATUS_UNSET)
    else:  # Status: message (2), code (3) = STATUS_CODE_ERROR
        parts.append(field(b"\x7a", (field(b"\x12", d.error.encode()) if d.error else b"") + b"\x18\x02"))
    return b"".join(parts)


def _resource(attrs: Attrs) -> bytes:
    """ResourceSpans.resource (1): a Resource with its attributes (1); the same few per agent, written once."""
    key = tuple(attrs)
    out = _RESOURCES.get(key)
    if out is None:
        if len(_RESOURCES) > 64:
            _RESOURCES.clear()
        out = _RESOURCES[key] = field(b"\x0a", _kv(b"\x0a", attrs))
    return out


_SCOPE = field(b"\x0a", field(b"\x0a", SCOPE[0].encode()) + field(b"\x12", SCOPE[1].encode()))  # ScopeSpans.scope
# (1): an InstrumentationScope's name (1) and version (2), both set


def encode_run(points: Sequence[Point]) -> bytes | None:
    """The run's serialized ExportTraceServiceRequest (resource_spans (1): one ResourceSpans of its
    resource (1) and one ScopeSpans (2) of the scope (1) and the spans (2)); None when there is no run."""
    run = run_spans(points)
    if run is None:
        return None
    try:
        scope_spans = _SCOPE + b"".join([field(b"\x12", _span(d)) for d in run.spans])
    except struct.error as e:  # a time before 1970 or past 2554: refused, as protobuf refuses it
        raise ValueError(f"a span time is out of range: {e}") from None
    return field(b"\x0a", _resource(run.resource) + field(b"\x12", scope_spans))
