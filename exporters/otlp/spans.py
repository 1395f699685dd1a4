"""One run's points -> its spans -> one OTLP ExportTraceServiceRequest, serialized.

The tree a backend shows: a span per run (`journey NAME`, the root), per step (`step NAME`, its
child) and per request the step sent (kind CLIENT, the span id that went on the wire as the
`traceparent` parent id, so the backend's server span hangs under it). The ids are the ones the
runner made (points carry `trace_id`, `span_id`, `request_spans`). A failed step's span and its
run's are status ERROR with `error.type` its class; HTTP attributes follow the semantic
conventions (`http.request.method`, `url.full` — already masked —, `server.address`,
`http.response.status_code`); measured phases are events on the request span. A retry's run links
to the first attempt's (a span link). Skipped steps have no span: they sent nothing.

What a span holds is decided once (`run_spans`: plain tuples), then written two ways:
- `encode_run`, the sink's hot path: the protobuf wire format written directly (varints and
  length-delimited fields, as `exporters/prometheus/proto.py` frames samples), because building
  opentelemetry-proto's message objects in Python (and reading each point's fields through
  `Point.field`, a dict per call) was ~85 % of the spool thread's CPU per run (docs/benchmarks.md,
  the `otlp` sink);
- `export_request`, opentelemetry-proto's own messages: the reference. `encode_run`'s bytes are
  byte-identical to its `SerializeToString()` (tests/test_otlp_encoding.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from qos_agent import __version__
from qos_agent.model import PHASES, FieldValue, Point

MS = 1_000_000  # nanoseconds in a millisecond
CLIENT_NAMES = {"websocket": "GET", "grpc": "grpc.health.v1.Health/Check"}
OWN_TAGS = frozenset({"journey", "step", "region", "agent", "probe", "kind"})
INTERNAL, CLIENT = Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_CLIENT
SCOPE = ("qos-agent", __version__)

Attrs = list[tuple[str, FieldValue]]  # attributes, in order, none None or ""


class SpanData(NamedTuple):
    """One span, decided: what both writers write."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes  # b"": the trace's root
    name: str
    kind: Span.SpanKind.ValueType
    start: int  # unix ns
    end: int
    attributes: Attrs
    error: str | None  # status ERROR with this message; None: status UNSET
    events: list[tuple[int, str, Attrs]]  # (unix ns, name, attributes)
    links: list[tuple[bytes, bytes, Attrs]]  # (trace id, span id, attributes)


class RunSpans(NamedTuple):
    resource: Attrs
    spans: list[SpanData]


def _attrs(pairs: Iterable[tuple[str, FieldValue | None]]) -> Attrs:
    return [(k, v) for k, v in pairs if v is not None and v != ""]


def _window(time_ms: int, f: dict[str, FieldValue]) -> tuple[int, int]:
    start = time_ms * MS
    duration = f.get("duration_ms")
    return start, start + int(float(duration) * MS if isinstance(duration, int | float) else 0)


def _status(f: dict[str, FieldValue]) -> str | None:
    """The status message of a failed span (ERROR), None when UNSET."""
    if f.get("success") is False and f.get("outcome") != "skipped":
        return str(f.get("error_message") or "")
    return None


def _error(f: dict[str, FieldValue]) -> list[tuple[str, FieldValue | None]]:
    return [("error.type", f.get("error") or None)] if f.get("success") is False else []


def _run_span(j: Point, f: dict[str, FieldValue]) -> SpanData:
    tags = dict(j.tags)
    start, end = _window(j.time_ms, f)
    first_trace, first_span = f.get("first_trace_id"), f.get("first_span_id")
    links = []
    if first_trace and first_span:  # a retry: a link to its first attempt's run
        links.append((bytes.fromhex(str(first_trace)), bytes.fromhex(str(first_span)),
                      _attrs([("qos.link", "first attempt")])))
    return SpanData(bytes.fromhex(str(f.get("trace_id"))), bytes.fromhex(str(f.get("span_id"))), b"",
                    f"journey {tags.get('journey')}", INTERNAL, start, end,
                    _attrs([("qos.journey", tags.get("journey")), ("qos.kind", tags.get("kind")),
                            ("qos.run_id", f.get("run_id")), ("qos.attempt", f.get("attempt")),
                            ("qos.outcome", f.get("outcome")), ("qos.failed_step", f.get("failed_step")),
                            ("qos.lagged", f.get("lagged")), *_error(f),
                            *((f"qos.tag.{k}", v) for k, v in j.tags if k not in OWN_TAGS)]),
                    _status(f), [], links)


def _step_spans(s: Point, f: dict[str, FieldValue], parent: bytes) -> list[SpanData]:
    """The step's span and, under it, one CLIENT span per request it sent."""
    tags = dict(s.tags)
    window = _window(s.time_ms, f)
    trace_id, span_id = bytes.fromhex(str(f.get("trace_id"))), bytes.fromhex(str(f.get("span_id")))
    url = str(f.get("url") or "")
    status, error = _status(f), _error(f)
    out = [SpanData(trace_id, span_id, parent, f"step {tags.get('step')}", INTERNAL, window[0], window[1],
                    _attrs([("qos.step", tags.get("step")), ("qos.probe", tags.get("probe")),
                            ("qos.outcome", f.get("outcome")), ("qos.lagged", f.get("lagged")),
                            ("url.full", url or None), *error]),
                    status, [], [])]
    requests = str(f.get("request_spans") or "").split()
    if not requests:
        return out
    probe = tags.get("probe") or ""
    method = str(f.get("http_method") or "")
    parts = urlsplit(url) if url else None
    name = method or CLIENT_NAMES.get(probe, probe.upper() or "request")
    for i, request_id in enumerate(requests):
        attributes = _attrs([("http.request.method", method or None), ("url.full", url or None),
                             ("server.address", parts.hostname if parts else None),
                             ("server.port", parts.port if parts else None),
                             ("http.response.status_code", f.get("status_code")),
                             ("rpc.system", "grpc" if probe == "grpc" else None), *error])
        out.append(SpanData(trace_id, bytes.fromhex(request_id), span_id, name, CLIENT, window[0], window[1],
                            attributes, status, _phases(f, window[0]) if i == 0 else [], []))
    return out


def _phases(f: dict[str, FieldValue], at: int) -> list[tuple[int, str, Attrs]]:
    """The measured phases, each an event at the moment it ended (on the step's first request)."""
    events = []
    for name in PHASES:
        took = f.get(name)
        if isinstance(took, int | float) and not isinstance(took, bool) and took > 0:
            at += int(float(took) * MS)
            events.append((at, name.removesuffix("_ms"), _attrs([("duration_ms", float(took))])))
    return events


def run_spans(points: Sequence[Point]) -> RunSpans | None:
    """The run's spans (its journey point and its step points) and resource, or None when there is no run."""
    journey = next((p for p in points if p.measurement == "journey" and p.field("trace_id")), None)
    if journey is None:
        return None
    jf = dict(journey.fields)
    if not jf.get("span_id"):
        return None
    root = _run_span(journey, jf)
    spans = [root]
    trace = jf.get("trace_id")
    for s in points:
        if s.measurement == "step":
            f = dict(s.fields)
            if f.get("span_id") and f.get("trace_id") == trace:
                spans += _step_spans(s, f, root.span_id)
    tags = dict(journey.tags)
    resource = _attrs([("service.name", "qos-agent"), ("service.version", __version__),
                       ("qos.region", tags.get("region")), ("qos.agent", tags.get("agent"))])
    return RunSpans(resource, spans)


def runs(points: Sequence[Point]) -> list[list[Point]]:
    """The batch's points grouped by run (journey points with the steps of the same trace)."""
    by_trace: dict[str, list[Point]] = {}
    for p in points:
        trace = p.field("trace_id")
        if p.measurement in ("journey", "step") and trace:
            by_trace.setdefault(str(trace), []).append(p)
    return list(by_trace.values())


# ----- the reference: opentelemetry-proto's messages -----------------------------------------------

def _value(v: FieldValue) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _key_values(attrs: Attrs) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attrs]


def _message(d: SpanData) -> Span:
    status = Status(code=Status.STATUS_CODE_UNSET) if d.error is None else \
        Status(code=Status.STATUS_CODE_ERROR, message=d.error)
    span = Span(trace_id=d.trace_id, span_id=d.span_id, parent_span_id=d.parent_span_id, name=d.name, kind=d.kind,
                start_time_unix_nano=d.start, end_time_unix_nano=d.end, status=status,
                attributes=_key_values(d.attributes))
    for at, name, attrs in d.events:
        span.events.append(Span.Event(time_unix_nano=at, name=name, attributes=_key_values(attrs)))
    for trace_id, span_id, attrs in d.links:
        span.links.append(Span.Link(trace_id=trace_id, span_id=span_id, attributes=_key_values(attrs)))
    return span


def export_request(points: Sequence[Point]) -> ExportTraceServiceRequest | None:
    """The run's spans as opentelemetry-proto's messages (the reference `encode_run` is tested against)."""
    run = run_spans(points)
    if run is None:
        return None
    resource = Resource(attributes=_key_values(run.resource))
    scope = InstrumentationScope(name=SCOPE[0], version=SCOPE[1])
    spans = [_message(d) for d in run.spans]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource,
                                                                   scope_spans=[ScopeSpans(scope=scope, spans=spans)])])


# ----- the hot path: the same message, written directly ---------------------------------------------
# Field tags ((number << 3) | wire type) of opentelemetry-proto 1.x; proto3 leaves a singular field at
# its default (0, b"", "") out, a set message field or oneof member is always written, fields go in
# field-number order: what protobuf's serializer does.

_SMALL = [bytes((i,)) for i in range(128)]
_Q = struct.Struct("<Q").pack  # fixed64
_D = struct.Struct("<d").pack  # double
_INT64 = 1 << 63
_STATUS_UNSET = b"\x7a\x00"  # Span.status (15): a Status with every field at its default
_KEYS: dict[str, bytes] = {}  # KeyValue.key (1) of each attribute name, written once
_STR_HEAD = [bytes((0x12, n + 2, 0x0a, n)) for n in range(126)]  # value (2): string_value (1) of n < 126 bytes
_RESOURCES: dict[tuple[tuple[str, FieldValue], ...], bytes] = {}


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _SMALL[n]
    n &= 0xFFFFFFFFFFFFFFFF  # int64: a negative is ten bytes, two's complement, as protobuf writes it
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field."""
    n = len(body)
    return tag + (_SMALL[n] if n < 128 else _varint(n)) + body


def _key(k: str) -> bytes:
    kb = _KEYS.get(k)
    if kb is None:
        if len(_KEYS) > 4096:  # qos.tag.* names come from journeys' tags: bounded all the same
            _KEYS.clear()
        kb = _KEYS[k] = _field(b"\x0a", k.encode())
    return kb


def _kv(tag: bytes, attrs: Attrs) -> bytes:
    """Repeated KeyValue under field `tag`: key (1), value (2) an AnyValue, whose oneof member is
    string_value (1), bool_value (2), int_value (3, int64) or double_value (4)."""
    out = []
    for k, v in attrs:
        if v.__class__ is str:
            text = v.encode()
            value = _STR_HEAD[len(text)] + text if len(text) < 126 else _field(b"\x12", _field(b"\x0a", text))
        elif isinstance(v, bool):
            value = b"\x12\x02\x10\x01" if v else b"\x12\x02\x10\x00"
        elif isinstance(v, int):
            if not -_INT64 <= v < _INT64:
                raise ValueError(f"attribute {k}: {v} is out of int64 range")
            value = _field(b"\x12", b"\x18" + _varint(v))
        elif isinstance(v, float):
            value = b"\x12\x09\x21" + _D(v)
        else:  # a str subclass, or another type: as the reference writes it (str(v))
            value = _field(b"\x12", _field(b"\x0a", str(v).encode()))
        kv = _key(k) + value
        n = len(kv)
        out.append(tag + (_SMALL[n] if n < 128 else _varint(n)) + kv)
    return b"".join(out)


def _span(d: SpanData) -> bytes:
    """Span: trace_id (1), span_id (2), parent_span_id (4), name (5), kind (6), start (7) and end (8)
    fixed64, attributes (9), events (11), links (13), status (15)."""
    parts = [_field(b"\x0a", d.trace_id) if d.trace_id else b"", _field(b"\x12", d.span_id) if d.span_id else b"",
             _field(b"\x22", d.parent_span_id) if d.parent_span_id else b"",
             _field(b"\x2a", d.name.encode()) if d.name else b"", b"\x30" + _varint(d.kind) if d.kind else b"",
             b"\x39" + _Q(d.start) if d.start else b"", b"\x41" + _Q(d.end) if d.end else b"",
             _kv(b"\x4a", d.attributes)]
    for at, name, attrs in d.events:  # Event: time_unix_nano (1) fixed64, name (2), attributes (3)
        event = (b"\x09" + _Q(at) if at else b"") + (_field(b"\x12", name.encode()) if name else b"")
        parts.append(_field(b"\x5a", event + _kv(b"\x1a", attrs)))
    for trace_id, span_id, attrs in d.links:  # Link: trace_id (1), span_id (2), attributes (4)
        link = (_field(b"\x0a", trace_id) if trace_id else b"") + (_field(b"\x12", span_id) if span_id else b"")
        parts.append(_field(b"\x6a", link + _kv(b"\x22", attrs)))
    if d.error is None:
        parts.append(_STATUS_UNSET)
    else:  # Status: message (2), code (3) = STATUS_CODE_ERROR
        parts.append(_field(b"\x7a", (_field(b"\x12", d.error.encode()) if d.error else b"") + b"\x18\x02"))
    return b"".join(parts)


def _resource(attrs: Attrs) -> bytes:
    """ResourceSpans.resource (1): a Resource with its attributes (1); the same few per agent, written once."""
    key = tuple(attrs)
    out = _RESOURCES.get(key)
    if out is None:
        if len(_RESOURCES) > 64:
            _RESOURCES.clear()
        out = _RESOURCES[key] = _field(b"\x0a", _kv(b"\x0a", attrs))
    return out


_SCOPE = _field(b"\x0a", _field(b"\x0a", SCOPE[0].encode()) + _field(b"\x12", SCOPE[1].encode()))  # ScopeSpans.scope
# (1): an InstrumentationScope's name (1) and version (2), both set


def encode_run(points: Sequence[Point]) -> bytes | None:
    """The run's serialized ExportTraceServiceRequest (resource_spans (1): one ResourceSpans of its
    resource (1) and one ScopeSpans (2) of the scope (1) and the spans (2)); None when there is no run."""
    run = run_spans(points)
    if run is None:
        return None
    try:
        scope_spans = _SCOPE + b"".join([_field(b"\x12", _span(d)) for d in run.spans])
    except struct.error as e:  # a time before 1970 or past 2554: refused, as protobuf refuses it
        raise ValueError(f"a span time is out of range: {e}") from None
    return _field(b"\x0a", _resource(run.resource) + _field(b"\x12", scope_spans))
