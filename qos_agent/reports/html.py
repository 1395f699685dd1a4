"""`qos-agent report --html FILE`: the embedded store as one self-contained HTML page, for people without Grafana.

Per journey × region a chart shows, over time buckets, the share of final runs that passed (green)
and failed (red), the p95 duration, and — on the same time axis, right under it — the region's
plain uptime check. Disruptions are shaded across the chart; one the uptime check stayed green
through is hatched and labelled "hidden from uptime", so the gap the product exists to show is
seen at a glance. Charts are SVG drawn here: no script, no external asset, opens offline.
The store is read through `qos_agent.reports.table` (same loaders, same percentiles).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qos_agent.reports.table import (
    Disruption,
    ReportRow,
    cutoff_ms,
    load_disruptions,
    load_report,
    percentile,
    query_store,
)

NICE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_BUCKETS = 90
# Chart geometry (SVG user units).
W, LEFT, RIGHT = 960, 64, 16
OK_TOP, OK_H = 18, 96
LAT_TOP, LAT_H = 132, 72
UP_TOP, UP_H = 218, 14
AXIS_Y = 248
H = 262


@dataclass(frozen=True, slots=True)
class Run:
    """One final journey run, as the chart needs it."""

    journey: str
    region: str
    kind: str
    time_ms: int
    ok: bool
    duration_ms: float


def load_runs(db_path: str | Path, since_s: float | None = None, *, now_ms: int | None = None) -> list[Run]:
    """Final runs (oldest first) since `since_s` seconds ago, or all; ReportError when unreadable."""
    cutoff = cutoff_ms(since_s, int(time.time() * 1000) if now_ms is None else now_ms)
    sql = ("SELECT journey, region, kind, time_ms, success, duration_ms FROM points "
           "WHERE measurement = 'journey' AND final = 1" + (" AND time_ms >= ?" if cutoff is not None else "")
           + " ORDER BY time_ms")
    rows = query_store(Path(db_path), sql, (cutoff,) if cutoff is not None else ())
    return [Run(str(j), str(r), str(k or "journey"), int(str(t)), bool(ok),
                float(d) if isinstance(d, int | float) else 0.0) for j, r, k, t, ok, d in rows]


@dataclass(frozen=True, slots=True)
class Axis:
    start_ms: int
    end_ms: int
    bucket_ms: int

    @classmethod
    def covering(cls, times: Iterable[int]) -> Axis:
        ts = list(times)
        lo, hi = min(ts), max(ts)
        span_s = max(1.0, (hi - lo) / 1000)
        bucket_s = next((b for b in NICE_BUCKETS_S if span_s / b <= MAX_BUCKETS), NICE_BUCKETS_S[-1])
        bucket_ms = bucket_s * 1000
        start = lo // bucket_ms * bucket_ms
        end = (hi // bucket_ms + 1) * bucket_ms
        return cls(start, end, bucket_ms)

    @property
    def buckets(self) -> int:
        return (self.end_ms - self.start_ms) // self.bucket_ms

    def x(self, t_ms: float) -> float:
        share = (t_ms - self.start_ms) / (self.end_ms - self.start_ms)
        return round(LEFT + min(1.0, max(0.0, share)) * (W - LEFT - RIGHT), 1)

    def index(self, t_ms: int) -> int:
        return min(self.buckets - 1, max(0, (t_ms - self.start_ms) // self.bucket_ms))


def _when(ms: float, with_date: bool = True) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _bucketed(runs: list[Run], axis: Axis) -> list[list[Run]]:
    out: list[list[Run]] = [[] for _ in range(axis.buckets)]
    for r in runs:
        out[axis.index(r.time_ms)].append(r)
    return out


def _chart(runs: list[Run], uptime: list[Run], disruptions: list[Disruption], axis: Axis) -> str:
    """One SVG: disruptions shaded, passed/failed columns, p95 line, the uptime strip, the time axis."""
    parts: list[str] = []
    bw = (W - LEFT - RIGHT) / axis.buckets
    for d in disruptions:
        x0, x1 = axis.x(d.start_ms), axis.x(d.end_ms if d.end_ms is not None else axis.end_ms)
        hidden = d.uptime_ok is True
        cls = "dis hidden" if hidden else "dis"
        label = "hidden from uptime" if hidden else "disruption"
        end = _when(d.end_ms) if d.end_ms is not None else "still open"
        parts.append(f'<rect class="{cls}" x="{x0}" y="4" width="{max(2.0, x1 - x0):.1f}" height="{UP_TOP + UP_H - 2}">'
                     f"<title>{_e(label)}: {_e(d.reason)} — {_e(_when(d.start_ms))} to {_e(end)}</title></rect>")
        parts.append(f'<text class="dis-label{" hidden" if hidden else ""}" x="{x0 + 3}" y="13">{_e(label)}</text>')
    p95_points: list[tuple[float, float]] = []
    buckets = _bucketed(runs, axis)
    p95s = [percentile(sorted(r.duration_ms for r in b), 95) if b else None for b in buckets]
    top = max([p for p in p95s if p is not None] or [1.0]) * 1.15
    for i, (b, p95) in enumerate(zip(buckets, p95s, strict=True)):
        if not b:
            continue
        x = LEFT + i * bw
        ok = sum(1 for r in b if r.ok)
        ok_h = OK_H * ok / len(b)
        tip = f"{_when(axis.start_ms + i * axis.bucket_ms)}: {ok}/{len(b)} passed"
        if ok:
            parts.append(f'<rect class="ok" x="{x:.1f}" y="{OK_TOP + OK_H - ok_h:.1f}" width="{max(1.0, bw - 1):.1f}" '
                         f'height="{ok_h:.1f}"><title>{_e(tip)}</title></rect>')
        if ok < len(b):
            parts.append(f'<rect class="fail" x="{x:.1f}" y="{OK_TOP}" width="{max(1.0, bw - 1):.1f}" '
                         f'height="{OK_H - ok_h:.1f}"><title>{_e(tip)}</title></rect>')
        if p95 is not None:
            p95_points.append((x + bw / 2, LAT_TOP + LAT_H - LAT_H * p95 / top))
    if p95_points:
        line = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(p95_points))
        parts.append(f'<path class="p95" d="{line}"/>')
        parts.extend(f'<circle class="p95" cx="{x:.1f}" cy="{y:.1f}" r="1.8"/>' for x, y in p95_points)
    for i, b in enumerate(_bucketed(uptime, axis)):
        if not b:
            continue
        bad = sum(1 for r in b if not r.ok)
        tip = f"uptime {_when(axis.start_ms + i * axis.bucket_ms)}: {len(b) - bad}/{len(b)} passed"
        parts.append(f'<rect class="{"up-bad" if bad else "up-ok"}" x="{LEFT + i * bw:.1f}" y="{UP_TOP}" '
                     f'width="{max(1.0, bw - 0.5):.1f}" height="{UP_H}"><title>{_e(tip)}</title></rect>')
    frame = [
        f'<text class="lbl" x="{LEFT - 6}" y="{OK_TOP + 8}">100%</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{OK_TOP + OK_H}">0%</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{LAT_TOP + 8}">{top:.0f} ms</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{LAT_TOP + LAT_H}">p95</text>',
        f'<text class="lbl" x="{LEFT - 6}" y="{UP_TOP + 11}">uptime</text>',
        f'<line class="axis" x1="{LEFT}" y1="{OK_TOP + OK_H}" x2="{W - RIGHT}" y2="{OK_TOP + OK_H}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{LAT_TOP + LAT_H}" x2="{W - RIGHT}" y2="{LAT_TOP + LAT_H}"/>',
    ]
    with_date = axis.end_ms - axis.start_ms > 86_400_000
    for k in range(7):
        t = axis.start_ms + (axis.end_ms - axis.start_ms) * k / 6
        anchor = "start" if k == 0 else "end" if k == 6 else "middle"
        frame.append(f'<text class="tick" text-anchor="{anchor}" x="{axis.x(t)}" y="{AXIS_Y}">'
                     f"{_e(_when(t, with_date) if with_date else _when(t, False))}</text>")
    return (f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(frame)}{"".join(parts)}</svg>')


def _summary(rows: list[ReportRow]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("journey", "region", "runs", "success", "p50", "p95", "p99",
                                              "last error"))
    body = "".join(
        f"<tr><td>{_e(r.journey)}</td><td>{_e(r.region)}</td><td class=n>{r.runs}</td>"
        f'<td class="n {"good" if r.successes == r.runs else "bad"}">{100 * r.success_ratio:.2f}%</td>'
        f"<td class=n>{r.p50_ms:.0f} ms</td><td class=n>{r.p95_ms:.0f} ms</td><td class=n>{r.p99_ms:.0f} ms</td>"
        f"<td>{_e(r.last_error)}</td></tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _disruption_table(disruptions: list[Disruption]) -> str:
    if not disruptions:
        return "<p>No disruptions in this window.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("journey", "region", "started", "ended", "reason", "uptime check"))
    body = "".join(
        f'<tr class="{"hidden" if d.uptime_ok else ""}"><td>{_e(d.journey)}</td><td>{_e(d.region)}</td>'
        f"<td>{_e(_when(d.start_ms))}</td><td>{_e(_when(d.end_ms) if d.end_ms is not None else 'still open')}</td>"
        f"<td>{_e(d.reason)}</td><td>"
        + {True: '<span class="badge">green — hidden from uptime</span>', False: "red (uptime saw it)",
           None: "unknown"}[d.uptime_ok] + "</td></tr>" for d in disruptions)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(runs: list[Run], rows: list[ReportRow], disruptions: list[Disruption], *, title: str,
                generated_ms: int) -> str:
    """The whole page as a string (no I/O), so it can be tested and embedded."""
    cards: list[str] = []
    times = [r.time_ms for r in runs] + [d.start_ms for d in disruptions] + [
        d.end_ms for d in disruptions if d.end_ms is not None]
    if times:
        axis = Axis.covering(times)
        pairs = sorted({(r.journey, r.region) for r in runs if r.kind != "uptime"})
        for journey, region in pairs:
            mine = [r for r in runs if r.journey == journey and r.region == region]
            uptime = [r for r in runs if r.region == region and r.kind == "uptime"]
            dis = [d for d in disruptions if d.journey == journey and d.region == region]
            ok = sum(1 for r in mine if r.ok)
            p95 = percentile(sorted(r.duration_ms for r in mine), 95)
            hidden = sum(1 for d in dis if d.uptime_ok)
            note = (f' <span class="badge">{hidden} hidden from uptime</span>' if hidden else "")
            cards.append(
                f'<section class="card" data-journey="{_e(journey)}" data-region="{_e(region)}">'
                f"<h3>{_e(journey)} · {_e(region)}{note}</h3>"
                f'<p class="meta">{len(mine)} runs · {100 * ok / len(mine):.2f}% passed · p95 {p95:.0f} ms · '
                f"{len(dis)} disruption{'s' if len(dis) != 1 else ''} · bucket {axis.bucket_ms // 1000} s"
                + ("" if uptime else " · no uptime check in this region") + "</p>"
                + _chart(mine, uptime, dis, axis) + "</section>")
    charts = "".join(cards) or "<p>No journey runs in this window.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{_e(title)}</h1><p class="meta">generated {_e(_when(generated_ms))}</p>
<p class="legend"><span class="sw ok"></span>passed <span class="sw fail"></span>failed
<span class="sw p95"></span>p95 duration <span class="sw up-ok"></span>uptime check passing
<span class="sw up-bad"></span>uptime check failing <span class="sw dis"></span>disruption
<span class="sw hidden"></span>disruption hidden from uptime (uptime stayed green)</p></header>
<main>
<h2>Journeys over time</h2>
{charts}
<h2>Disruptions</h2>
{_disruption_table(disruptions)}
<h2>Summary per journey × region</h2>
{_summary(rows)}
</main></body></html>
"""


def write_html_report(db_path: str | Path, out_path: str | Path, since_s: float | None = None, *,
                      now_ms: int | None = None) -> None:
    """Read the store (ReportError when it cannot be read) and write the page to `out_path`."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    runs = load_runs(db_path, since_s, now_ms=now)
    rows = load_report(db_path, since_s, now_ms=now)
    disruptions = load_disruptions(db_path, since_s, now_ms=now)
    page = render_html(runs, rows, disruptions, title=f"qos-agent report — {Path(db_path).name}",
                       generated_ms=now)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#fff;border-bottom:1px solid #d0d7de;padding:12px 24px}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:24px 0 8px}h3{font-size:15px;margin:0 0 2px}
main{padding:0 24px 24px}.meta{color:#57606a;margin:2px 0 6px;font-size:12px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 12px;margin:0 0 12px;width:fit-content}
.chart{display:block;max-width:100%;height:auto}
.ok{fill:#2da44e}.fail{fill:#cf222e}.p95{stroke:#0969da;fill:none;stroke-width:1.6}circle.p95{fill:#0969da}
.up-ok{fill:#2da44e}.up-bad{fill:#cf222e}
.dis{fill:#cf222e;fill-opacity:.10;stroke:#cf222e;stroke-opacity:.5;stroke-dasharray:3 2}
.dis.hidden{fill:#bf8700;fill-opacity:.22;stroke:#bf8700;stroke-opacity:.9}
.dis-label{font-size:10px;fill:#cf222e;font-weight:600}.dis-label.hidden{fill:#9a6700}
.lbl{font-size:10px;fill:#57606a;text-anchor:end}.tick{font-size:10px;fill:#57606a}.axis{stroke:#d0d7de}
.badge{background:#fff8c5;border:1px solid #d4a72c;color:#7d4e00;border-radius:10px;padding:0 6px;font-size:11px;
 font-weight:600}
table{border-collapse:collapse;background:#fff;border:1px solid #d0d7de}
th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;font-size:13px}
td.n{text-align:right;font-variant-numeric:tabular-nums}.good{color:#1a7f37}.bad{color:#cf222e}
tr.hidden td{background:#fff8c5}
.legend{font-size:12px;color:#57606a;margin:6px 0 0}
.sw{display:inline-block;width:12px;height:10px;margin:0 3px 0 10px;vertical-align:middle;border-radius:2px}
.sw.ok,.sw.up-ok{background:#2da44e}.sw.fail,.sw.up-bad{background:#cf222e}.sw.p95{background:#0969da;height:3px}
.sw.dis{background:rgba(207,34,46,.15);border:1px dashed #cf222e}.sw.hidden{background:rgba(191,135,0,.3);
 border:1px solid #bf8700}
"""
