"""Hypothesis strategies that turn good journeys files into hostile ones (tests/test_fuzz.py uses them).

Seeds are the sample journeys.yaml and every ```yaml example in README.md and docs/. A case is one
seed with 1-4 mutations: lines deleted, duplicated, swapped; values swapped or replaced by hostile
ones (foreign tags, number typos, NaN, structures where scalars go, broken templates, control
characters, huge strings, deep nesting); anchors, aliases and merge keys; an alias bomb; tabs;
renamed keys; the scorecard's journey keys (owner, customer_reason, weight) added with plausible
and hostile values; and raw bytes (binary, non-UTF-8) spliced in.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"```yaml\n(.*?)```", re.S)


def seeds() -> list[str]:
    out = [(ROOT / "journeys.yaml").read_text()]
    for doc in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        out += [m.group(1) for m in _FENCE.finditer(doc.read_text()) if "journeys" in m.group(1)
                or "steps" in m.group(1)]
    return out


BOMB = "bomb:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))

HOSTILE_VALUES = [
    "!!int abc", "!!float x", "!!bool maybe", "!!timestamp x", "!!omap x", "!!set {a}", "!!binary aGk=",
    "!foo x", "!!python/object:os.system x", "!!str", "!!map x", "!!seq x", "0x_", "0b_", "0o_", "1_", ".nan",
    ".inf", "-.inf", "1e999", "-0", "1" * 5000, "1:30:00", "2024-01-01", "[1]", "{a: 1}", "{<<: 1}", "[]", "{}",
    "~", "null", '""', "true", "no", "*nope", "&x", "'unclosed", '"unclosed', '"a\\r\\nb"', '"a\\nb\\u0000"',
    '"x\\\\"', '"\\u202e evil"', '"{{ unclosed"', '"{{ }}"', '"{{ a }"', '"{{{ a }}}"', '"${}"', '"${BAD-NAME}"',
    '"${X"', '"${A:-${B}}"', '"${QOS_FUZZ_UNSET}"', '"${HOME}"', "0.0000001ms", "99999999999h", "-1s", "0s",
    "1e3ms", "-1", "1000000000000000000000", '"' + "x" * 200_000 + '"', "[" * 70 + "]" * 70,
    "[" * 3000 + "]" * 3000, "{a: " * 500 + "1" + "}" * 500, "- - - - - x", "| \n  block", ">-", "? a", "@x",
    "`x`", "%x", "a: b: c", "'it''s'", "ü", "😀", "\u0085", "x\ty", '"\\t\\x1b[31mred"', "\\",
]

# Journey tags that cannot become labels: reserved by the agent, Prometheus or Alertmanager, or two that
# would be one label (qos_agent/sinks/labels.py); the loader must locate each.
HOSTILE_TAGS = ["{job: x}", "{instance: x}", "{__name__: x}", "{_.x: x}", "{hidden-from-uptime: x}", "{le: x, quantile: y}",
                "{alertname: x}", "{severity: x}", "{sink: x}", "{outcome: x, lagged: y}", '{"a.b": 1, "a-b": 2}',
                '{"tier-1": gold, tier_1: silver}', "{error: x, phase: y}"]
_TAGS_LINE = re.compile(r"^(\s*)tags:(\s*).*$")
_JOURNEY_NAME = re.compile(r"^(\s*)- name:")
# The scorecard's journey keys (qos_agent/config/metadata.py) and values for them, good and bad.
METADATA_KEYS = ("owner", "customer_reason", "weight")
METADATA_VALUES = ["team-payments", '"pay for an order"', "0.25", "1200", "0", "-1", "-0.0", "1e999", ".nan", ".inf",
                   '" padded "', '"back\\slash"', '"tab\there"', "[x]", "{a: 1}", "~", '""', "true",
                   '"' + "r" * 300 + '"', "${QOS_FUZZ_SET}", "${QOS_FUZZ_UNSET}"]
_JOURNEY = re.compile(r"^(\s*)- name: ")

_KV = re.compile(r"^(\s*(?:- )?)([^\s:#'\"][^:#]*?):(\s+)(.+?)\s*$")


def _kv_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _KV.match(line)]


@st.composite
def _mutate_lines(draw: st.DrawFn, lines: list[str]) -> list[str]:
    if not lines:
        return ["version: 1\n"]
    op = draw(st.sampled_from(("delete", "duplicate", "swap", "value", "swap_values", "anchor", "merge", "tab",
                               "rename", "indent", "bomb", "deep", "tags", "metadata")))
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    kv = _kv_lines(lines)
    k = kv[draw(st.integers(0, len(kv) - 1))] if kv else i
    m = _KV.match(lines[k])
    if op == "delete":
        del lines[i]
    elif op == "duplicate":
        lines.insert(i, lines[i])
    elif op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "value" and m:
        lines[k] = f"{m.group(1)}{m.group(2)}:{m.group(3)}{draw(st.sampled_from(HOSTILE_VALUES))}\n"
    elif op == "swap_values" and m and len(kv) > 1:
        k2 = kv[draw(st.integers(0, len(kv) - 1))]
        m2 = _KV.match(lines[k2])
        if m2:
            lines[k] = f"{m.group(1)}{m.group(2)}:{m.group(3)}{m2.group(4)}\n"
            lines[k2] = f"{m2.group(1)}{m2.group(2)}:{m2.group(3)}{m.group(4)}\n"
    elif op == "anchor" and m and len(kv) > 1:
        lines[k] = f"{m.group(1)}{m.group(2)}:{m.group(3)}&fz {m.group(4)}\n"
        k2 = kv[draw(st.integers(0, len(kv) - 1))]
        m2 = _KV.match(lines[k2])
        if m2:
            lines[k2] = f"{m2.group(1)}{m2.group(2)}:{m2.group(3)}*fz\n"
    elif op == "merge" and m:
        indent = " " * len(m.group(1))
        lines.insert(k, f"{indent}<<: {draw(st.sampled_from(('*fz', '1', '{a: 1}', '[*fz]', '*nope')))}\n")
    elif op == "tab":
        lines[i] = "\t" + lines[i].lstrip(" ")
    elif op == "rename" and m and len(m.group(2)) > 1:
        cut = draw(st.integers(0, len(m.group(2)) - 1))
        name = m.group(2)[:cut] + m.group(2)[cut + 1:]
        lines[k] = f"{m.group(1)}{name}:{m.group(3)}{m.group(4)}\n"
    elif op == "indent":
        lines[i] = ("  " + lines[i]) if draw(st.booleans()) else lines[i][2:]
    elif op == "bomb":
        lines.append(BOMB)
    elif op == "tags":
        tags = draw(st.sampled_from(HOSTILE_TAGS))
        at = [n for n, line in enumerate(lines) if _TAGS_LINE.match(line)]
        if at:
            n = at[draw(st.integers(0, len(at) - 1))]
            lines[n] = f"{_TAGS_LINE.match(lines[n]).group(1)}tags: {tags}\n"  # type: ignore[union-attr]
        elif names := [n for n, line in enumerate(lines) if _JOURNEY_NAME.match(line)]:
            n = names[draw(st.integers(0, len(names) - 1))]
            indent = len(_JOURNEY_NAME.match(lines[n]).group(1)) + 2  # type: ignore[union-attr]
            lines.insert(n + 1, " " * indent + f"tags: {tags}\n")
    elif op == "metadata":
        starts = [(n, found.group(1)) for n, line in enumerate(lines) if (found := _JOURNEY.match(line))]
        if starts:
            at, outer = starts[draw(st.integers(0, len(starts) - 1))]
            indent = " " * (len(outer) + 2)
            key, value = draw(st.sampled_from(METADATA_KEYS)), draw(st.sampled_from(METADATA_VALUES))
            lines.insert(at + 1, f"{indent}{key}: {value}\n")
    elif op == "deep" and m:
        depth = draw(st.sampled_from((10, 63, 64, 65, 1000, 100_000)))
        lines[k] = f"{m.group(1)}{m.group(2)}:{m.group(3)}" + "[" * depth + "]" * depth + "\n"
    return lines


@st.composite
def hostile_files(draw: st.DrawFn, seed_texts: list[str]) -> bytes:
    """One mutated journeys file, as bytes."""
    text = draw(st.sampled_from(seed_texts))
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        lines = draw(_mutate_lines(lines))
    data = "".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # raw bytes spliced in: binary, a lone 0xff, half a UTF-8 sequence
        junk = draw(st.one_of(st.binary(min_size=1, max_size=16), st.sampled_from((b"\xff", b"\xc3", b"\x00",
                                                                                   b"\xed\xa0\x80"))))
        at = draw(st.integers(0, len(data)))
        data = data[:at] + junk + data[at:]
    return data
