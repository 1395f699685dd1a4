"""The `otlp` sink's hot path writes protobuf's bytes (exporters/otlp/wire.py): `encode_run` is
byte-identical to opentelemetry-proto's own `ExportTraceServiceRequest.SerializeToString()` of the same
spans (`export_request`), for runs of every shape — failed, skipped, retried, tagged, several requests
a step, non-HTTP probes, long and non-ASCII text, every attribute type and odd values — and the batch
body the sink sends parses to every run's spans.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from exporters.otlp.config import OtlpSpec
from exporters.otlp.reference import export_request
from exporters.otlp.sink import OtlpSink
from exporters.otlp.spans import runs
from exporters.otlp.wire import encode_run
from qos_agent.delivery.points import points_of
from qos_agent.model import ErrorClass, FieldValue, JourneyResult, Point
from qos_agent.plugins.sinks import ExporterEnv
from tests.support.results import T0_MS, failed, journey, passed, skipped

TRACE, TRACE2 = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT, FIRST_ROOT = "b7ad6b7169203331", "00f067aa0ba902b7"


def _ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(64):016x}" for _ in range(n)]


def _traced(r: JourneyResult, trace: str = TRACE, root: str = ROOT) -> JourneyResult:
    """The run with the ids the runner gives: a trace, a root span, a span per step and per request."""
    r.trace_id, r.span_id = trace, root
    for i, s in enumerate(r.steps):
        if s.outcome.value == "skipped":
            continue
        s.span_id = _ids(1, i)[0]
        if not s.request_spans:
            s.request_spans = _ids(1, 100 + i)
    return r


def _http(name: str, **kw: object) -> object:
    return passed(name, url="http://shop.example:8443/api/cart?id=1", text={"http_method": "POST"},
                  phases={"dns_ms": 1.25, "connect_ms": 0.0, "tls_ms": 3.5, "ttfb_ms": 40.125, "transfer_ms": 2.0},
                  **kw)


CASES: dict[str, JourneyResult] = {
    "passed": _traced(journey("checkout", [_http("login"), _http("pay")])),
    "failed and skipped": _traced(journey("checkout", [
        _http("login"),
        failed("pay", ErrorClass.STATUS, "HTTP 503 from the payment service", status_code=503,
               url="http://shop.example/pay", text={"http_method": "GET"}),
        skipped("receipt")])),
    "failed without a message": _traced(journey("c", [failed("s", ErrorClass.TIMEOUT, "")])),
    "a retry links to its first attempt": _traced(journey("checkout", [_http("login")], attempt=2,
                                                          first_trace_id=TRACE2, first_span_id=FIRST_ROOT)),
    "journey tags and unicode": _traced(journey("caisse-été", [passed("connexion ✓", url="https://例え.jp/パス")],
                                                region="eu-west-3", agent="agent-ä",
                                                tags=(("team", "paiements"), ("tier", "1")))),
    "several requests a step (redirects)": _traced(journey("j", [passed("s", url="http://a.example/",
                                                                        request_spans=_ids(4, 7))])),
    "non-HTTP probes": _traced(journey("probes", [passed("grpc", probe="grpc", url="grpc://h:50051"),
                                                  passed("ws", probe="websocket", url="ws://h/sock"),
                                                  passed("tcp", probe="tcp", url="tcp://h:22"),
                                                  passed("browser", probe="browser", url="https://b.example/",
                                                         metrics={"fcp_ms": 812.5, "requests": 31})])),
    "long text (multi-byte lengths)": _traced(journey("j" * 300, [failed("s" * 200, ErrorClass.ASSERTION, "é" * 9000,
                                                                         url="http://h/" + "x" * 20000)])),
    "no duration, at the epoch": _traced(journey("j", [passed("s", duration_ms=0.0)], start_ms=0, duration_ms=0.0)),
    "a port-less URL and a lagged run": _traced(journey("j", [passed("s", url="http://h/", loop_lag_ms=250.0,
                                                                     lagged=True)], lagged=True)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_encode_run_is_protobufs_own_bytes(name: str) -> None:
    points = points_of([CASES[name]])
    request = export_request(points)
    assert request is not None and request.resource_spans[0].scope_spans[0].spans
    assert encode_run(points) == request.SerializeToString()


def _odd(rng: random.Random) -> FieldValue:
    return rng.choice([
        True, False, 0, 1, -1, 127, 128, 2**31, -(2**40), 2**63 - 1, -(2**63),
        0.0, -0.0, 1e-300, 3.5, float("inf"), float("-inf"), float("nan"),
        "x", "ü" * rng.randint(1, 80), "a" * rng.randint(100, 300), "🙂" * rng.randint(1, 40),
    ])


@pytest.mark.parametrize("seed", range(40))
def test_encode_run_is_protobufs_own_bytes_for_odd_values(seed: int) -> None:
    """Every attribute a point's fields or tags feed, given values of every type and size at random; what
    protobuf refuses (or the span's times cannot be computed from), encode_run refuses too."""
    rng = random.Random(seed)
    points = points_of([_traced(journey("j", [_http("a"), failed("b", message="m")],
                                        tags=(("t", "v"), ("u", "w"))))])
    fed = ("run_id", "attempt", "outcome", "failed_step", "lagged", "error", "error_message", "status_code",
           "url", "http_method")
    times = ("duration_ms", "dns_ms", "ttfb_ms", "transfer_ms")  # mostly times, sometimes anything

    def value(k: str, v: FieldValue) -> FieldValue:
        if k in times:
            return _odd(rng) if rng.random() < 0.05 else rng.choice([0, 0.0, 1, 2.5, -3.0, True, "12", 1e6, 7])
        return _odd(rng) if k in fed and rng.random() < 0.7 else v

    odd = []
    for p in points:
        fields = [(k, value(k, v)) for k, v in p.fields]
        if p.measurement == "step" and rng.random() < 0.5:
            fields = [(k, v) for k, v in fields if k != "url"] + [("url", f"http://h:{rng.randint(1, 65535)}/p")]
        tags = tuple((k, "é" * rng.randint(0, 3) + v) for k, v in p.tags)
        odd.append(Point(p.measurement, tags, tuple(fields), p.time_ms + rng.randint(0, 10**6)))
    try:
        request = export_request(odd)
    except (ValueError, OverflowError):  # an infinite duration, an int past int64: no bytes either way
        with pytest.raises((ValueError, OverflowError)):
            encode_run(odd)
        return
    assert request is not None
    assert encode_run(odd) == request.SerializeToString()


def test_points_without_a_run_are_no_request() -> None:
    r = journey("j", [passed("s")])  # no trace ids: a result from before tracing
    assert encode_run(points_of([r])) is None and export_request(points_of([r])) is None
    assert encode_run([Point("disruption", (("journey", "j"),), (("reason", "x"),), T0_MS)]) is None


def test_the_sink_stores_one_record_per_run_and_sends_them_as_one_request(tmp_path: Path) -> None:
    results = [_traced(journey("j", [_http("s")]), trace=f"{i + 1:032x}", root=f"{i + 1:016x}") for i in range(5)]
    points = points_of(results)
    sink = OtlpSink(OtlpSpec(url="http://127.0.0.1:1/v1/traces", name="t"), ExporterEnv(tmp_path, "r", "a"))
    records = sink.encode(points)
    assert len(records) == len(runs(points)) == 5
    body = ExportTraceServiceRequest()
    body.ParseFromString(b"".join(base64.b64decode(r) for r in records))  # what `send` posts
    assert [rs.scope_spans[0].spans[0].trace_id.hex() for rs in body.resource_spans] == [r.trace_id for r in results]
    assert sum(len(rs.scope_spans[0].spans) for rs in body.resource_spans) == 5 * 3  # run, step, request
