"""The remote-write 1.0 `WriteRequest` message, built with protobuf's descriptor API.

Choice: no generated `_pb2` and no .proto compiler at build time. The four messages of Prometheus'
prompb/types.proto + remote.proto that remote write 1.0 uses (WriteRequest, TimeSeries, Label, Sample;
field numbers as published) are declared here as a FileDescriptorProto and turned into real protobuf
message classes by the `protobuf` runtime, so the wire encoding is protobuf's own, and no generated
code can drift from the installed runtime's version. Snappy block compression is cramjam's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from qos_agent.sinks.protowire import varint

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name="qos_agent/prometheus_remote_write.proto", package="prometheus",
                                             syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("Sample", ("value", 1, _F.TYPE_DOUBLE, opt, ""), ("timestamp", 2, _F.TYPE_INT64, opt, ""))
    message("Label", ("name", 1, _F.TYPE_STRING, opt, ""), ("value", 2, _F.TYPE_STRING, opt, ""))
    message("TimeSeries", ("labels", 1, _F.TYPE_MESSAGE, rep, ".prometheus.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, rep, ".prometheus.Sample"))
    message("WriteRequest", ("timeseries", 1, _F.TYPE_MESSAGE, rep, ".prometheus.TimeSeries"))
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
WriteRequest: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("prometheus.WriteRequest"))

Series = tuple[tuple[tuple[str, str], ...], Sequence[tuple[float, int]]]  # (sorted labels with __name__, samples)


def encode_series(series: Sequence[Series]) -> bytes:
    """Serialized, uncompressed WriteRequest. Two of these concatenated are one WriteRequest holding both
    (protobuf merges repeated fields), which is how a batch of stored records becomes one request."""
    req = WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for name, text in labels:
            ts.labels.add(name=name, value=text)
        for value, time_ms in samples:
            ts.samples.add(value=value, timestamp=time_ms)
    return bytes(req.SerializeToString())


def label_bytes(labels: Sequence[tuple[str, str]]) -> bytes:
    """A TimeSeries holding only these labels, serialized by protobuf (made once per series)."""
    ts = WriteRequest().timeseries.add()
    for name, text in labels:
        ts.labels.add(name=name, value=text)
    return bytes(ts.SerializeToString())


def timeseries_entry(labels: bytes, value: float, time_ms: int) -> bytes:
    """One `WriteRequest.timeseries` entry: a series' cached label bytes plus one sample.

    The per-sample hot path of the sink: protobuf's Python API costs ~10 calls per sample (one per
    label), so the labels are serialized once per series by protobuf (`label_bytes`) and only this
    framing is written here: field 2 (samples) of TimeSeries holding Sample{1: double, 2: int64},
    then field 1 (timeseries) of WriteRequest. Byte-identical to protobuf's output (tested).
    """
    sample = b""
    if value != 0.0:  # proto3 leaves a field at its default value out
        sample += b"\x09" + struct.pack("<d", value)
    if time_ms != 0:
        sample += b"\x10" + varint(time_ms)
    ts = labels + b"\x12" + varint(len(sample)) + sample
    return b"\x0a" + varint(len(ts)) + ts


def decode(body: bytes) -> list[Series]:
    """A serialized WriteRequest back to series (for tests and the bench)."""
    req = WriteRequest()
    req.ParseFromString(body)
    return [(tuple((lb.name, lb.value) for lb in ts.labels), [(s.value, s.timestamp) for s in ts.samples])
            for ts in req.timeseries]


def compress(body: bytes) -> bytes:
    """Snappy *block* format, as remote write requires (not the framed/stream format)."""
    return bytes(cramjam.snappy.compress_raw(body))


def decompress(body: bytes) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(body))
