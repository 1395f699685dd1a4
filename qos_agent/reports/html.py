"""`qos-agent report --html FILE`: the CX scorecard as one self-contained page, printable to PDF.

It opens with the summary in words, then the customer reasons at a glance, then one section per
customer reason (owner, verdict, trend, its journeys × regions, and the run timeline of each,
reports/charts.py), then the disruptions and the newest failed runs, each with its trace id (a link
when journeys.yaml sets `agent.trace_url`). Inline CSS and SVG only: no script, no external asset,
opens offline and prints one card per block. Every time on the page is UTC and says so.
"""

from __future__ import annotations

import html
from pathlib import Path

from qos_agent.reports.charts import Frame, chart
from qos_agent.reports.columns import (
    COMPACT_HEADERS,
    REASON_HEADERS,
    RIGHT,
    compact_cells,
    delta,
    reason_cells,
    verdict,
)
from qos_agent.reports.figures import Disruption, FailedRun, Timeline
from qos_agent.reports.scorecard import ReasonCard, Row, Scorecard
from qos_agent.reports.words import caveats, headline, percent, period_line, uptime_line, when


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class Markup(str):
    """A cell already written as HTML (a link), placed as is; every other cell is escaped."""


def _cell(value: str) -> str:
    return value if isinstance(value, Markup) else _e(value)


def _trace(trace_id: str, template: str) -> str:
    """A trace id, as a link when `agent.trace_url` is set (docs/tracing.md); "—" without one."""
    if not trace_id:
        return "—"
    if not template:
        return Markup(f'<code class="trace">{_e(trace_id)}</code>')
    url = template.replace("{trace_id}", trace_id)
    return Markup(f'<a class="trace" href="{_e(url)}"><code>{_e(trace_id)}</code></a>')


def _table(headers: tuple[str, ...], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f'<th class="{"n" if h in RIGHT else ""}">{_e(h)}</th>' for h in headers)
    body = "".join(
        f'<tr class="{(classes or [""] * len(rows))[k]}">'
        + "".join(f'<td class="{"n" if h in RIGHT else ""}">{_cell(c)}</td>' for h, c in zip(headers, row, strict=True))
        + "</tr>" for k, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _state(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "nodata"}[met]


def _card(row: Row, timeline: Timeline, frame: Frame) -> str:
    runs = timeline.runs.get((row.journey, row.region))
    if runs is None:
        return ""
    bands = [b for b in timeline.bands if (b.journey, b.region) == (row.journey, row.region)]
    hidden = sum(1 for b in bands if b.hidden)
    note = f' <span class="badge">{hidden} hidden from uptime</span>' if hidden else ""
    n = row.now
    uptime = timeline.uptime.get(row.region, [])
    p95 = "—" if n.p95_ms is None else f"{n.p95_ms:.0f} ms"
    meta = (f"{n.runs} runs · {percent(n.success_ratio)} passed · p95 {p95}"
            f" · {row.degraded_runs} degraded · {len(bands)} disruption{'s' if len(bands) != 1 else ''}"
            f" · bucket {timeline.bucket_ms // 1000} s" + ("" if uptime else " · no uptime check in this region"))
    svg = chart(runs, uptime, bands, frame, slo_success=n.slo_success, slo_latency_ms=n.slo_latency_ms)
    return (f'<section class="card" data-journey="{_e(row.journey)}" data-region="{_e(row.region)}">'
            f"<h4>{_e(row.journey)} · {_e(row.region)}{note}</h4><p class=\"meta\">{_e(meta)}</p>{svg}</section>")


def _reason(reason: ReasonCard, card: Scorecard, timeline: Timeline | None, frame: Frame | None) -> str:
    rows = [r for r in card.rows if r.journey in reason.journeys]
    n, t = reason.now, reason.trend
    trend = ("no previous period to compare with" if t is None else
             f"since the previous period: success {delta(n.success_ratio, t.success_ratio, ' pp', 100, 2)}, "
             f"customer-minutes {delta(n.customer_minutes, t.customer_minutes, '', 1, 1)}")
    owners = ", ".join(reason.owners) or "no owner named"
    cards = "".join(_card(r, timeline, frame) for r in rows) if timeline is not None and frame is not None else ""
    title = reason.customer_reason or "(no customer reason)"
    return (f'<section class="reason {_state(reason.met)}" data-reason="{_e(title)}">'
            f'<h3>{_e(title)} <span class="verdict {_state(reason.met)}">{_e(verdict(reason.met))}</span></h3>'
            f'<p class="meta">owner: {_e(owners)} · journeys: {_e(", ".join(reason.journeys))} · {_e(trend)}</p>'
            + _table(COMPACT_HEADERS, [compact_cells(r) for r in rows], [_state(r.now.met) for r in rows])
            + (cards or "") + "</section>")


def _disruptions(found: list[Disruption] | None, template: str) -> str:
    if found is None:
        return ""
    if not found:
        return "<h2>Disruptions</h2><p>No disruptions in this period.</p>"
    rows = [[d.journey, d.region, when(d.start_ms, seconds=True),
             when(d.end_ms, seconds=True) if d.end_ms is not None else "still open", d.reason,
             {True: "green — hidden from uptime", False: "red (uptime saw it)", None: "unknown"}[d.uptime_ok],
             " · ".join(x for x in (d.failed_step, d.error) if x) or "—", _trace(d.trace_id, template)]
            for d in found]
    headers = ("journey", "region", "started", "ended", "reason", "uptime check", "failing step · class",
               "trace of the last failed run")
    return "<h2>Disruptions</h2>" + _table(headers, rows, ["hidden" if d.uptime_ok else "" for d in found])


def _failed_runs(found: list[FailedRun] | None, template: str) -> str:
    """The newest failed runs, each with its trace: from the page to the backend's view of that run."""
    if found is None:
        return ""
    if not found:
        return "<h2>Failed runs</h2><p>No failed runs in this period.</p>"
    rows = [[when(r.time_ms, seconds=True), r.journey, r.region, r.agent, r.failed_step or "—", r.error or "—",
             r.error_message or "—", _trace(r.trace_id, template)] for r in found]
    return (f'<h2>Failed runs</h2><p class="meta">the newest {len(found)}, newest first</p>'
            + _table(("time", "journey", "region", "agent", "failed step", "class", "message", "trace"), rows))


def render_html(card: Scorecard, timeline: Timeline | None, disruptions: list[Disruption] | None,
                failed: list[FailedRun] | None = None, trace_url: str = "") -> str:
    """The whole page as a string (no I/O). `trace_url`: agent.trace_url, to link each trace id."""
    frame = Frame(timeline) if timeline is not None else None
    notes = "".join(f"<li>{_e(n)}</li>" for n in caveats(card))
    reasons = "".join(_reason(r, card, timeline, frame) for r in card.reasons)
    overview = (_table(REASON_HEADERS, [reason_cells(r) for r in card.reasons], [_state(r.met) for r in card.reasons])
                if card.reasons else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CX scorecard — {_e(card.window.label)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>CX scorecard — {_e(card.window.label)}</h1>
<p class="meta">{_e(period_line(card))} · from {_e(card.source)} · generated {_e(when(card.generated_ms))}</p></header>
<main>
<section class="summary"><h2>Summary</h2><p class="headline">{_e(headline(card))}</p><ul>{notes}</ul>
<p class="meta">{_e(uptime_line(card))}</p></section>
<h2>Customer reasons</h2>
{overview}
{reasons}
{_disruptions(disruptions, trace_url)}
{_failed_runs(failed, trace_url)}
<h2>How to read it</h2>
<p class="legend"><span class="sw ok"></span>passed <span class="sw degraded"></span>degraded (passed, slower than
the latency objective) <span class="sw fail"></span>failed <span class="sw p95"></span>p95 of on-time runs
<span class="sw target"></span>objective <span class="sw up-ok"></span>uptime check passing
<span class="sw up-bad"></span>uptime check failing <span class="sw dis"></span>disruption
<span class="sw hidden"></span>disruption hidden from uptime (uptime stayed green)</p>
<p class="meta">Success counts passed and degraded final runs; latency is of runs the agent did not slow itself;
customer-minutes are disrupted minutes × the journey's weight; — means no data (never 0 % or 100 %).
Times are UTC. docs/scorecard.md defines every figure.</p>
</main></body></html>
"""


def write_html(page: str, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_path)


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#fff;border-bottom:1px solid #d0d7de;padding:12px 24px}
h1{font-size:20px;margin:0}h2{font-size:17px;margin:24px 0 8px}h3{font-size:16px;margin:0 0 4px}
h4{font-size:14px;margin:0 0 2px}
main{padding:0 24px 24px}.meta{color:#57606a;margin:2px 0 8px;font-size:12px}
.summary .headline{font-size:16px;font-weight:600;margin:4px 0}.summary ul{margin:4px 0;color:#57606a}
.reason{background:#fff;border:1px solid #d0d7de;border-left:6px solid #8c959f;border-radius:6px;padding:12px;
 margin:0 0 16px}
.reason.met{border-left-color:#2da44e}.reason.missed{border-left-color:#cf222e}
.verdict{font-size:12px;border-radius:10px;padding:1px 8px;vertical-align:middle}
.verdict.met{background:#dafbe1;color:#1a7f37}.verdict.missed{background:#ffebe9;color:#cf222e}
.verdict.nodata{background:#eaeef2;color:#57606a}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px 12px;margin:12px 0 0;width:fit-content;background:#fff}
.chart{display:block;max-width:100%;height:auto}
.ok{fill:#2da44e}.degraded{fill:#fb8f44}.fail{fill:#cf222e}
.p95{stroke:#0969da;fill:none;stroke-width:1.6}circle.p95{fill:#0969da}
.target{stroke:#6e7781;stroke-width:1.2;stroke-dasharray:6 3}.target-label{font-size:10px;fill:#57606a}
.up-ok{fill:#2da44e}.up-bad{fill:#cf222e}
.dis{fill:#cf222e;fill-opacity:.10;stroke:#cf222e;stroke-opacity:.5;stroke-dasharray:3 2}
.dis.hidden{fill:#bf8700;fill-opacity:.22;stroke:#bf8700;stroke-opacity:.9}
.dis-label{font-size:10px;fill:#cf222e;font-weight:600}.dis-label.hidden{fill:#9a6700}
.lbl{font-size:10px;fill:#57606a;text-anchor:end}.tick{font-size:10px;fill:#57606a}.axis{stroke:#d0d7de}
.badge{background:#fff8c5;border:1px solid #d4a72c;color:#7d4e00;border-radius:10px;padding:0 6px;font-size:11px;
 font-weight:600}
table{border-collapse:collapse;background:#fff;border:1px solid #d0d7de;margin:4px 0}
th,td{padding:3px 7px;border-bottom:1px solid #eaeef2;text-align:left;font-size:12px}
th.n,td.n{text-align:right;font-variant-numeric:tabular-nums}td.n{white-space:nowrap}
tr.missed td{background:#ffebe9}tr.hidden td{background:#fff8c5}
.legend{font-size:12px;color:#57606a;margin:6px 0 0}
.sw{display:inline-block;width:12px;height:10px;margin:0 3px 0 10px;vertical-align:middle;border-radius:2px}
.sw.ok,.sw.up-ok{background:#2da44e}.sw.degraded{background:#fb8f44}.sw.fail,.sw.up-bad{background:#cf222e}
.sw.p95{background:#0969da;height:3px}.sw.target{border-top:2px dashed #6e7781;height:0}
.sw.dis{background:rgba(207,34,46,.15);border:1px dashed #cf222e}.sw.hidden{background:rgba(191,135,0,.3);
 border:1px solid #bf8700}
@media print{body{background:#fff}header{border:0}.reason,.card{break-inside:avoid}main{padding:0 8px}}
"""
