"""One run's points -> one OTLP ExportTraceServiceRequest (opentelemetry-proto's own messages).

The tree a backend shows: a span per run (`journey NAME`, the root), per step (`step NAME`, its
child) and per request the step sent (kind CLIENT, the span id that went on the wire as the
`traceparent` parent id, so the backend's server span hangs under it). The ids are the ones the
runner made (points carry `trace_id`, `span_id`, `request_spans`). A failed step's span and its
run's are status ERROR with `error.type` its class; HTTP attributes follow the semantic
conventions (`http.request.method`, `url.full` — already masked —, `server.address`,
`http.response.status_code`); measured phases are events on the request span. A retry's run links
to the first attempt's (a span link). Skipped steps have no span: they sent nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def _value(v: FieldValue) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _attrs(pairs: Iterable[tuple[str, FieldValue | None]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in pairs if v is not None and v != ""]


def _window(p: Point) -> tuple[int, int]:
    start = p.time_ms * MS
    duration = p.field("duration_ms")
    return start, start + int(float(duration) * MS if isinstance(duration, int | float) else 0)


def _status(p: Point) -> Status:
    if p.field("success") is False and p.field("outcome") != "skipped":
        return Status(code=Status.STATUS_CODE_ERROR, message=str(p.field("error_message") or ""))
    return Status(code=Status.STATUS_CODE_UNSET)


def _error(p: Point) -> list[tuple[str, FieldValue | None]]:
    return [("error.type", p.field("error") or None)] if p.field("success") is False else []


def run_span(j: Point) -> Span:
    start, end = _window(j)
    span = Span(trace_id=bytes.fromhex(str(j.field("trace_id"))), span_id=bytes.fromhex(str(j.field("span_id"))),
                name=f"journey {j.tag('journey')}", kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start, end_time_unix_nano=end, status=_status(j),
                attributes=_attrs([("qos.journey", j.tag("journey")), ("qos.kind", j.tag("kind")),
                                   ("qos.run_id", j.field("run_id")), ("qos.attempt", j.field("attempt")),
                                   ("qos.outcome", j.field("outcome")), ("qos.failed_step", j.field("failed_step")),
                                   ("qos.lagged", j.field("lagged")), *_error(j),
                                   *((f"qos.tag.{k}", v) for k, v in j.tags if k not in OWN_TAGS)]))
    first_trace, first_span = j.field("first_trace_id"), j.field("first_span_id")
    if first_trace and first_span:
        span.links.append(Span.Link(trace_id=bytes.fromhex(str(first_trace)), span_id=bytes.fromhex(str(first_span)),
                                    attributes=_attrs([("qos.link", "first attempt")])))
    return span


def step_spans(s: Point, parent: bytes) -> list[Span]:
    """The step's span and, under it, one CLIENT span per request it sent."""
    start, end = _window(s)
    trace_id, span_id = bytes.fromhex(str(s.field("trace_id"))), bytes.fromhex(str(s.field("span_id")))
    url = str(s.field("url") or "")
    step = Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=f"step {s.tag('step')}",
                kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start, end_time_unix_nano=end, status=_status(s),
                attributes=_attrs([("qos.step", s.tag("step")), ("qos.probe", s.tag("probe")),
                                   ("qos.outcome", s.field("outcome")), ("qos.lagged", s.field("lagged")),
                                   ("url.full", url or None), *_error(s)]))
    out = [step]
    requests = str(s.field("request_spans") or "").split()
    for i, request_id in enumerate(requests):
        out.append(_request_span(s, trace_id, span_id, request_id, url, (start, end), phases=i == 0))
    return out


def _request_span(s: Point, trace_id: bytes, parent: bytes, request_id: str, url: str, window: tuple[int, int],
                  phases: bool) -> Span:
    probe = s.tag("probe") or ""
    method = str(s.field("http_method") or "")
    parts = urlsplit(url) if url else None
    span = Span(trace_id=trace_id, span_id=bytes.fromhex(request_id), parent_span_id=parent,
                name=method or CLIENT_NAMES.get(probe, probe.upper() or "request"), kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=window[0], end_time_unix_nano=window[1], status=_status(s),
                attributes=_attrs([("http.request.method", method or None), ("url.full", url or None),
                                   ("server.address", parts.hostname if parts else None),
                                   ("server.port", parts.port if parts else None),
                                   ("http.response.status_code", s.field("status_code")),
                                   ("rpc.system", "grpc" if probe == "grpc" else None), *_error(s)]))
    if phases:  # the measured phases, each an event at the moment it ended
        at = window[0]
        for name in PHASES:
            took = s.field(name)
            if isinstance(took, int | float) and not isinstance(took, bool) and took > 0:
                at += int(float(took) * MS)
                span.events.append(Span.Event(time_unix_nano=at, name=name.removesuffix("_ms"),
                                              attributes=_attrs([("duration_ms", float(took))])))
    return span


def export_request(points: Sequence[Point]) -> ExportTraceServiceRequest | None:
    """The run's spans (its journey point and its step points), or None when there is no run."""
    journey = next((p for p in points if p.measurement == "journey" and p.field("trace_id")), None)
    if journey is None or not journey.field("span_id"):
        return None
    root = run_span(journey)
    spans = [root]
    for s in points:
        if s.measurement == "step" and s.field("span_id") and s.field("trace_id") == journey.field("trace_id"):
            spans += step_spans(s, root.span_id)
    resource = Resource(attributes=_attrs([("service.name", "qos-agent"), ("service.version", __version__),
                                           ("qos.region", journey.tag("region")), ("qos.agent", journey.tag("agent"))]))
    scope = InstrumentationScope(name="qos-agent", version=__version__)
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource,
                                                                   scope_spans=[ScopeSpans(scope=scope, spans=spans)])])


def runs(points: Sequence[Point]) -> list[list[Point]]:
    """The batch's points grouped by run (journey points with the steps of the same trace)."""
    by_trace: dict[str, list[Point]] = {}
    for p in points:
        trace = p.field("trace_id")
        if p.measurement in ("journey", "step") and trace:
            by_trace.setdefault(str(trace), []).append(p)
    return list(by_trace.values())
