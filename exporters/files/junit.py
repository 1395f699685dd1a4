"""JUnit XML: every final journey run as a test case, so CI shows journeys like tests.

One `<testsuite name="qos-agent">`; per final run one `<testcase classname="qos-agent.<region>"
name="<journey>">` with a `<property name="trace_id">` (the run's W3C trace). A failed run's
`<failure>` names the step, the error class and the detail, and its body lists every step
(✓ passed, ✗ failed, - skipped) and the artifacts as `[[ATTACHMENT|path]]` lines. A run that
passed only on a retry passes with a `flaky:` note. The file is written once, at `close()`,
atomically: temp file + rename. `check --junit` writes through this exporter too
(qos_agent/runloop/check.py): one JUnit writer.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from exporters.files.config import JunitSpec
from qos_agent.model import FieldValue, Point
from qos_agent.plugins.sinks import Exporter

SUITE = "qos-agent"
ARTIFACT_FIELDS = ("screenshot", "trace")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

RunKey = tuple[str, str, str, str, int]


def clean(text: object) -> str:
    """Text XML 1.0 can hold: control characters in error messages would make the file unreadable."""
    return _NOT_XML.sub("\ufffd", str(text))


@dataclass(slots=True)
class Run:
    """One attempt of one journey: its journey point (once seen) and its step points."""

    journey: Point | None = None
    steps: list[Point] = field(default_factory=list)


def _key(p: Point) -> RunKey:
    attempt = p.field("attempt")
    return (p.tag("journey") or "", p.tag("region") or "", p.tag("agent") or "",
            str(p.field("run_id") or ""), attempt if isinstance(attempt, int) else 1)


class Collector:
    """Groups points into runs and keeps the final ones (the newest `max_cases`, memory bounded)."""

    def __init__(self, max_cases: int = 10_000) -> None:
        self.max_cases = max_cases
        self.runs: OrderedDict[RunKey, Run] = OrderedDict()
        self._dropped: OrderedDict[RunKey, None] = OrderedDict()  # non-final attempts seen

    def add(self, points: Iterable[Point]) -> None:
        for p in points:
            if p.measurement not in ("journey", "step"):
                continue
            key = _key(p)
            if key in self._dropped:
                continue
            if p.measurement == "journey" and p.field("final") is False:
                self.runs.pop(key, None)
                self._dropped[key] = None
                if len(self._dropped) > 4096:
                    self._dropped.popitem(last=False)
                continue
            run = self.runs.setdefault(key, Run())
            if p.measurement == "journey":
                run.journey = p
            else:
                run.steps.append(p)
        while len(self.runs) > self.max_cases:
            self.runs.popitem(last=False)

    def finals(self) -> list[Run]:
        """Final runs in start order (a run whose journey point never came is left out)."""
        runs = [r for r in self.runs.values() if r.journey is not None]
        return sorted(runs, key=lambda r: r.journey.time_ms if r.journey else 0)


def _str(value: FieldValue | None) -> str:
    return "" if value is None else str(value)


def _num(value: FieldValue | None) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def step_line(s: Point) -> str:
    name = s.tag("step") or "?"
    outcome = _str(s.field("outcome"))
    if outcome == "skipped":
        return f"- {name} skipped"
    if s.field("success") is True:
        note = " (degraded)" if outcome == "degraded" else ""
        return f"✓ {name} {_num(s.field('duration_ms')):.0f} ms{note}"
    error, message = _str(s.field("error")), _str(s.field("error_message"))
    detail = f"{error}: {message}" if error and message else (error or message or "failed")
    body = _str(s.field("body_excerpt"))
    return f"✗ {name} {detail}" + (f"\n    response: {body}" if body else "")


def failure_message(j: Point) -> str:
    error, message = _str(j.field("error")), _str(j.field("error_message"))
    detail = f"{error}: {message}" if error and message else (error or message or "failed")
    step = _str(j.field("failed_step"))
    return f"step '{step}' failed: {detail}" if step else f"journey failed: {detail}"


def testcase(run: Run) -> ET.Element:
    j = run.journey
    assert j is not None
    case = ET.Element("testcase", {
        "classname": clean(f"{SUITE}.{j.tag('region') or ''}"),
        "name": clean(j.tag("journey") or ""),
        "time": f"{_num(j.field('duration_ms')) / 1000:.3f}",
    })
    if trace_id := _str(j.field("trace_id")):  # the run's trace: find the backend's side of a failure
        ET.SubElement(ET.SubElement(case, "properties"), "property", {"name": "trace_id", "value": clean(trace_id)})
    outcome = _str(j.field("outcome"))
    attempt = j.field("attempt")
    if outcome == "skipped":
        ET.SubElement(case, "skipped", {"message": clean(_str(j.field("error_message")) or "skipped")})
    elif j.field("success") is not True:
        lines = [step_line(s) for s in run.steps]
        lines += [f"[[ATTACHMENT|{s.field(a)}]]" for s in run.steps for a in ARTIFACT_FIELDS if s.field(a)]
        failure = ET.SubElement(case, "failure", {"message": clean(failure_message(j)),
                                                  "type": clean(_str(j.field("error")) or "failed")})
        failure.text = clean("\n".join(lines))
    else:
        notes = []
        if isinstance(attempt, int) and attempt > 1:
            notes.append(f"flaky: passed on attempt {attempt}")
        if outcome == "degraded":
            notes.append("degraded: slower than its latency objective")
        if notes:
            ET.SubElement(case, "system-out").text = clean("\n".join(notes))
    return case


def build_suite(runs: Sequence[Run]) -> ET.Element:
    cases = [testcase(r) for r in runs]
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    total = sum(_num(r.journey.field("duration_ms")) for r in runs if r.journey) / 1000
    attrs = {"name": SUITE, "tests": str(len(cases)), "failures": str(failures), "errors": "0",
             "skipped": str(skipped), "time": f"{total:.3f}"}
    if runs and runs[0].journey:
        start = datetime.fromtimestamp(runs[0].journey.time_ms / 1000, tz=UTC)
        attrs["timestamp"] = start.strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.Element("testsuite", attrs)
    suite.extend(cases)
    ET.indent(suite)
    return suite


def write_atomic(path: Path, root: ET.Element) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            ET.ElementTree(root).write(f, encoding="utf-8", xml_declaration=True)
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JunitExporter(Exporter):
    type: ClassVar[str] = "junit"

    def __init__(self, spec: JunitSpec) -> None:
        self.spec = spec
        self.collector = Collector(spec.max_cases)
        self._closed = False

    async def write(self, points: Sequence[Point]) -> None:
        self.collector.add(points)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        root = build_suite(self.collector.finals())
        await asyncio.to_thread(write_atomic, self.spec.path, root)
