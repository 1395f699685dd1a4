"""A run's spans as opentelemetry-proto's own messages: the reference the hand-written encoder
(`exporters/otlp/wire.py`) is tested against byte for byte, and what a reader checks the wire against."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from exporters.otlp.spans import SCOPE, Attrs, SpanData, run_spans
from qos_agent.model import FieldValue, Point


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
