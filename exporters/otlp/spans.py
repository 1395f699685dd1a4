"""One run's points -> its spans, decided once as plain tuples (what the two writers write).

The tree a backend shows: a span per run (`journey NAME`, the root), per step (`step NAME`, its
child) and per request the step sent (kind CLIENT, the span id that went on the wire as the
`traceparent` parent id, so the backend's server span hangs under it). The ids are the ones the
runner made (points carry `trace_id`, `span_id`, `request_spans`). A failed step's span and its
run's are status ERROR with `error.type` its class; HTTP attributes follow the semantic
conventions (`http.request.method`, `url.full` — already masked —, `server.address`,
`http.response.status_code`); measured phases are events on the request span. A retry's run links
to the first attempt's (a span link). Skipped steps have no span: they sent nothing.

What a span holds is decided once here (`run_spans`), then written two ways:
- `exporters/otlp/wire.py`'s `encode_run`, the sink's hot path: the protobuf wire format written
  directly, because building opentelemetry-proto's message objects in Python (and reading each
  point's fields through `Point.field`, a dict per call) was ~85 % of the spool thread's CPU per run
  (docs/benchmarks.md, the `otlp` sink);
- `exporters/otlp/reference.py`'s `export_request`, opentelemetry-proto's own messages: the reference
  `encode_run`'s bytes are tested against (tests/test_otlp_encoding.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from opentelemetry.proto.trace.v1.trace_pb2 import Span

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
