"""Protobuf's wire format, the two pieces the hand-written encoders share: a varint and a
length-delimited field. The remote-write samples (exporters/prometheus/proto.py) and the OTLP spans
(exporters/otlp/wire.py) are written as bytes directly because building message objects in Python
cost more than the rest of their sinks; each is tested byte for byte against protobuf's own output.
"""

from __future__ import annotations

import functools

SMALL = [bytes((i,)) for i in range(128)]  # the one-byte varints: most tags, lengths and small ints


def varint(n: int) -> bytes:
    if 0 <= n < 128:
        return SMALL[n]
    return _long_varint(n)


@functools.lru_cache(maxsize=4096)  # the same few timestamps and lengths recur within a record
def _long_varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # int64: a negative is ten bytes, two's complement, as protobuf writes it
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the body's length, the body."""
    n = len(body)
    return tag + (SMALL[n] if n < 128 else _long_varint(n)) + body
