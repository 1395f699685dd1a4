"""Line protocol: golden files for escaping, and `encode` == influxdb-client's own serializer.

Regenerate the golden file (after checking the diff by eye) with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from exporters.influxdb.lineprotocol import encode, encode_many, encode_reference
from qos_agent.model import FieldValue, Point

GOLDEN = Path(__file__).parent / "golden" / "lineprotocol.lp"
T = 1_700_000_000_123

CASES: list[tuple[str, Point]] = [
    ("plain", Point("journey", (("agent", "a1"), ("journey", "checkout"), ("region", "eu-west")),
                    (("duration_ms", 12.5), ("success", True), ("steps", 3), ("error", "")), T)),
    ("spaces", Point("my measure", (("journey", "sign up"),), (("error message", "no route to host"),), T)),
    ("commas", Point("m,1", (("step", "a,b"),), (("msg", "x,y"), ("k,1", 1)), T)),
    ("equals", Point("m=1", (("tag=k", "v=1"),), (("f=x", "a=b"),), T)),
    ("quotes", Point("m", (("t", 'say "hi"'),), (("s", 'say "hi"'),), T)),
    ("newlines", Point("m", (("t", "two\nlines"),), (("s", "two\nlines\r\n"),), T)),
    ("backslashes", Point("m", (("t", "C:\\dir\\"), ("u", "a\\b")), (("s", "C:\\dir\\"), ("s2", 'q\\"')), T)),
    ("tabs", Point("m", (("t", "a\tb"),), (("s", "a\tb"),), T)),
    ("unicode", Point("m", (("t", "Zürich ☃"),), (("s", "naïve ✓"),), T)),
    ("bool-int-float", Point("m", (), (("b1", True), ("b0", False), ("i", 42), ("neg", -7), ("big", 2**62),
                                       ("f", 1.0), ("g", 0.1), ("e", 1e-7), ("h", 1.5e300)), T)),
    ("skipped", Point("m", (("empty", ""), ("t", "x")), (("nan", float("nan")), ("inf", float("inf")),
                                                         ("ok", 1)), T)),
    ("sorted", Point("m", (("z", "1"), ("a", "2")), (("zeta", 1), ("alpha", 2)), T)),
    ("repeated-key", Point("m", (), (("x", 1), ("x", 2)), T)),
]


def render() -> str:
    return "".join(f"# {name}\n{encode(p)}\n" for name, p in CASES)


def test_golden_file() -> None:
    text = render()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_bytes(text.encode())
    assert text == GOLDEN.read_bytes().decode()  # bytes: a raw \r must survive


def test_encode_matches_the_library_serializer_on_golden_cases() -> None:
    for name, p in CASES:
        assert encode(p) == encode_reference(p), name


def test_ints_are_ints_floats_are_floats() -> None:
    line = encode(Point("m", (), (("n", 3), ("x", 3.0), ("b", True)), T))
    assert line == "m b=true,n=3i,x=3 1700000000123"


def test_a_point_with_no_fields_left_is_skipped() -> None:
    empty = Point("m", (("t", "x"),), (("nan", float("nan")),), T)
    assert encode(empty) == ""
    assert encode_many([empty, Point("m", (), (("a", 1),), T)]) == ["m a=1i 1700000000123"]


_ALPHABET = 'ab ,="\\\n\t=xé'


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, n)))


def test_encode_matches_the_library_serializer_on_random_points() -> None:
    rng = random.Random(4)
    for _ in range(2000):
        tags = tuple((_text(rng, 6), _text(rng, 8)) for _ in range(rng.randint(0, 4)))
        fields: list[tuple[str, FieldValue]] = []
        for _ in range(rng.randint(1, 6)):
            kind = rng.randrange(4)
            value: FieldValue = (_text(rng, 10) if kind == 0 else rng.randint(-10**12, 10**12) if kind == 1
                                 else rng.random() * 10 ** rng.randint(-5, 9) if kind == 2 else rng.random() < 0.5)
            fields.append((_text(rng, 6), value))
        p = Point(_text(rng, 6).lstrip("#") or "m", tags, tuple(fields), rng.randint(0, 2 * T))
        assert encode(p) == encode_reference(p), p
