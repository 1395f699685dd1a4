"""The run timeline of one journey in one region, as inline SVG (no script, no external asset).

From top to bottom on one time axis: each bucket's final runs as a stacked column — passed (green),
degraded (orange: it passed, but slower than `slo.latency`), failed (red) — with the success
objective drawn across it; the p95 of on-time runs against the latency objective, on an axis that
starts at "0 ms"; the region's plain uptime check. Disruptions are shaded across, hatched amber and
labelled when uptime monitoring stayed green through them. Time labels are UTC (the axis says so)
and never repeat: ticks sit on whole steps and show as much of the time as the step needs.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from qos_agent.reports.figures import Band, Bucket, Timeline

NICE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TICK_STEPS_S = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
                7 * 86400, 14 * 86400, 28 * 86400, 56 * 86400, 91 * 86400)
MAX_BUCKETS = 90
MAX_TICKS = 7
W, LEFT, RIGHT = 960, 64, 76  # the right margin holds the objectives' labels
OK_TOP, OK_H = 18, 96
LAT_TOP, LAT_H = 132, 72
UP_TOP, UP_H = 218, 14
AXIS_Y = 248
H = 262


def bucket_ms_for(span_ms: int) -> int:
    span_s = max(1.0, span_ms / 1000)
    return 1000 * next((b for b in NICE_BUCKETS_S if span_s / b <= MAX_BUCKETS), NICE_BUCKETS_S[-1])


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _utc(ms: float, fmt: str) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt)


def ticks(start_ms: int, end_ms: int) -> list[tuple[int, str]]:
    """Tick times on whole UTC steps with labels that differ from each other."""
    span_s = max(1, (end_ms - start_ms) // 1000)
    step = next((s for s in TICK_STEPS_S if span_s / s <= MAX_TICKS), TICK_STEPS_S[-1])
    if step >= 86400:
        fmt = "%Y-%m-%d" if span_s > 300 * 86400 else "%m-%d"
    elif span_s > 86400 or _utc(start_ms, "%d") != _utc(end_ms - 1, "%d"):
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%H:%M" if step >= 60 else "%H:%M:%S"
    first = -(-start_ms // (step * 1000)) * step * 1000
    out = [(t, _utc(t, fmt)) for t in range(first, end_ms + 1, step * 1000)]
    labels = [label for _, label in out]
    if len(set(labels)) != len(labels):  # cannot happen with whole steps, but never show a repeat
        out = [(t, _utc(t, "%Y-%m-%d %H:%M:%S")) for t, _ in out]
    return out


class Frame:
    """The time axis of every chart on the page (the timeline's buckets)."""

    def __init__(self, timeline: Timeline) -> None:
        self.start_ms = timeline.start_ms
        self.end_ms = timeline.start_ms + timeline.count * timeline.bucket_ms
        self.count = timeline.count
        self.bw = (W - LEFT - RIGHT) / timeline.count
        self.bucket_ms = timeline.bucket_ms

    def x(self, t_ms: float) -> float:
        share = (t_ms - self.start_ms) / (self.end_ms - self.start_ms)
        return round(LEFT + min(1.0, max(0.0, share)) * (W - LEFT - RIGHT), 1)


def _bands(bands: list[Band], frame: Frame) -> list[str]:
    parts = []
    for d in bands:
        x0, x1 = frame.x(d.start_ms), frame.x(d.end_ms if d.end_ms is not None else frame.end_ms)
        hidden = d.hidden is True
        label = "hidden from uptime" if hidden else "disruption"
        end = _utc(d.end_ms, "%Y-%m-%d %H:%M:%S UTC") if d.end_ms is not None else "still open"
        parts.append(f'<rect class="dis{" hidden" if hidden else ""}" x="{x0}" y="4" width="{max(2.0, x1 - x0):.1f}" '
                     f'height="{UP_TOP + UP_H - 2}"><title>{_e(label)}: {_e(d.reason)} — '
                     f'{_e(_utc(d.start_ms, "%Y-%m-%d %H:%M:%S UTC"))} to {_e(end)}</title></rect>')
        parts.append(f'<text class="dis-label{" hidden" if hidden else ""}" x="{x0 + 3}" y="13">{_e(label)}</text>')
    return parts


def _columns(runs: list[Bucket], frame: Frame) -> list[str]:
    parts = []
    width = max(1.0, frame.bw - 1)
    for i, b in enumerate(runs):
        if not b.runs:
            continue
        x, y = LEFT + i * frame.bw, float(OK_TOP + OK_H)
        tip = (f"{_utc(frame.start_ms + i * frame.bucket_ms, '%Y-%m-%d %H:%M UTC')}: {b.passed} passed, "
               f"{b.degraded} degraded (slower than the objective), {b.failed} failed")
        for cls, n in (("ok", b.passed), ("degraded", b.degraded), ("fail", b.failed)):
            if n:
                h = OK_H * n / b.runs
                y -= h
                parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}">'
                             f"<title>{_e(tip)}</title></rect>")
    return parts


def _latency(runs: list[Bucket], frame: Frame, objective_ms: float | None) -> tuple[list[str], float]:
    p95s = [(i, b.p95_ms) for i, b in enumerate(runs) if b.p95_ms is not None]
    top = max([p for _, p in p95s] + ([objective_ms] if objective_ms else []) + [1.0]) * 1.15
    points = [(LEFT + (i + 0.5) * frame.bw, LAT_TOP + LAT_H - LAT_H * p / top) for i, p in p95s]
    parts = []
    if points:
        line = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y) in enumerate(points))
        parts.append(f'<path class="p95" d="{line}"/>')
        parts.extend(f'<circle class="p95" cx="{x:.1f}" cy="{y:.1f}" r="1.8"/>' for x, y in points)
    if objective_ms:
        y = LAT_TOP + LAT_H - LAT_H * objective_ms / top
        parts.append(f'<line class="target" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}">'
                     f"<title>latency objective: p95 under {objective_ms:.0f} ms</title></line>")
        parts.append(f'<text class="target-label" x="{W - RIGHT + 4}" y="{y + 3:.1f}">objective</text>'
                     f'<text class="target-label" x="{W - RIGHT + 4}" y="{y + 14:.1f}">{objective_ms:.0f} ms</text>')
    return parts, top


def _uptime(uptime: list[Bucket], frame: Frame) -> list[str]:
    parts = []
    for i, b in enumerate(uptime):
        if not b.runs:
            continue
        at = _utc(frame.start_ms + i * frame.bucket_ms, "%Y-%m-%d %H:%M UTC")
        tip = f"uptime {at}: {b.runs - b.failed}/{b.runs} passed"
        parts.append(f'<rect class="{"up-bad" if b.failed else "up-ok"}" x="{LEFT + i * frame.bw:.1f}" y="{UP_TOP}" '
                     f'width="{max(1.0, frame.bw - 0.5):.1f}" height="{UP_H}"><title>{_e(tip)}</title></rect>')
    return parts


def chart(runs: list[Bucket], uptime: list[Bucket], bands: list[Band], frame: Frame, *,
          slo_success: float | None, slo_latency_ms: float | None) -> str:
    """One SVG for one journey × region."""
    latency, top = _latency(runs, frame, slo_latency_ms)
    parts = [*_bands(bands, frame), *_columns(runs, frame), *latency, *_uptime(uptime, frame)]
    if slo_success is not None:
        y = OK_TOP + OK_H * (1 - slo_success)
        parts.append(f'<line class="target" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}">'
                     f"<title>success objective {100 * slo_success:g} %</title></line>")
        parts.append(f'<text class="target-label" x="{W - RIGHT + 4}" y="{y + 3:.1f}">objective</text>'
                     f'<text class="target-label" x="{W - RIGHT + 4}" y="{y + 14:.1f}">{100 * slo_success:g} %</text>')
    frame_parts = [
        f'<text class="lbl" x="{LEFT - 6}" y="{OK_TOP + 8}">100 %</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{OK_TOP + OK_H}">0 %</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{LAT_TOP + 8}">{top:.0f} ms</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{LAT_TOP + LAT_H}">0 ms</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{LAT_TOP + LAT_H / 2 + 4}">p95</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{UP_TOP + 11}">uptime</text>',
        f'<line class="axis" x1="{LEFT}" y1="{OK_TOP + OK_H}" x2="{W - RIGHT}" y2="{OK_TOP + OK_H}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{LAT_TOP + LAT_H}" x2="{W - RIGHT}" y2="{LAT_TOP + LAT_H}"/>',
    ]
    marks = ticks(frame.start_ms, frame.end_ms)
    for t, label in marks:
        anchor = "start" if frame.x(t) < LEFT + 30 else "end" if frame.x(t) > W - RIGHT - 30 else "middle"
        frame_parts.append(f'<text class="tick" text-anchor="{anchor}" x="{frame.x(t)}" y="{AXIS_Y}">'
                           f"{_e(label)}</text>")
    frame_parts.append(f'<text class="tick utc" x="{W - RIGHT + 4}" y="{AXIS_Y}">UTC</text>')
    return (f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(frame_parts)}{"".join(parts)}</svg>')
