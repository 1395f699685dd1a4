"""The scorecard from InfluxDB, with InfluxQL through `/query`: 1.x, and 2.x/3.x/Cloud's v1 compatibility API.

The settings are the file's influxdb exporter (`api: v1`: database, retention_policy, username,
password; `api: v2`: the bucket as the database, the token as `Authorization: Token`), so the report
reads where the agents write. A window costs a request of several statements (the counts per
series, grouped by the tags the scorecard needs; the first and last run; the disruption points) and,
at the same time (at most three requests in flight: more only thrash the server), the on-time
durations in two time slices, from which the quantiles per journey ×
region and per journey are computed here, nearest-rank, exactly as the SQLite store's: one read of
the durations, where InfluxQL's `percentile()` reads them once per percentile asked (and takes rank
⌊n·N/100 + 0.5⌋, not ⌈n·p/100⌉). Only with a disruption still open, one more request: the last run of
each open one.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qos_agent.reports.disruptions import add_minutes, pair
from qos_agent.reports.errors import ReportError
from qos_agent.reports.figures import Band, Disruption, FailedRun, Figures, Quantiles, Timeline
from qos_agent.reports.journeyfile import InfluxSettings
from qos_agent.reports.period import Window
from qos_agent.reports.sources.http import request_json

TAGS = ("journey", "region", "agent", "kind", "owner", "customer_reason", "weight")
GROUP = "GROUP BY " + ",".join(f'"{t}"' for t in TAGS)
FINAL = '"final" = true'
COUNTS = {  # cell attribute -> the extra condition of its count (of a boolean field: cheaper to read)
    "runs": "", "successes": ' AND "success" = true', "degraded": " AND \"outcome\" = 'degraded'",
    "flaky": ' AND "flaky" = true', "lagged": ' AND "lagged" = true'}
DURATION_SLICES = 2  # the on-time durations are read in this many time slices at once
IN_FLIGHT = threading.BoundedSemaphore(3)  # requests at once, both periods together: more only thrash influxd
DISRUPTION_LOOKBACK_MS = 400 * 86_400_000  # an open point this old still pairs with a close in the window
DISRUPTION_FIELDS = ('"reason", "uptime_ok", "hidden_minutes", "success_ratio", "latency_p95_ms", "failed_step", '
                     '"error", "trace_id"')


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def span(window: Window) -> str:
    return f"time >= {window.from_ms}ms AND time < {window.to_ms}ms"


class InfluxSource:
    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self.database = settings.bucket if settings.api == "v2" else settings.database
        if not self.database:
            raise ReportError("the influxdb exporter names no " + ("bucket" if settings.api == "v2" else "database"))
        what = "bucket" if settings.api == "v2" else "database"
        self.description = f"InfluxDB {settings.url} ({what} {self.database})"

    def query(self, statements: list[str]) -> list[dict[str, Any]]:
        """Run statements in one request; their results in order (an InfluxQL error is a ReportError)."""
        s = self.settings
        form = {"q": ";".join(statements), "db": self.database, "epoch": "ms"}
        if s.retention_policy:
            form["rp"] = s.retention_policy
        headers = {}
        if s.api == "v2" and s.token:
            headers["Authorization"] = f"Token {s.token}"
        elif s.username:
            form.update(u=s.username, p=s.password)
        with IN_FLIGHT:
            doc = request_json(s.url + "/query", form, what="InfluxDB", base=s.url, headers=headers,
                               timeout_s=max(30.0, s.timeout_s), verify_tls=s.verify_tls)
        results: list[dict[str, Any]] = doc.get("results", []) if isinstance(doc, dict) else []
        for result in results:
            if "error" in result:
                raise ReportError(f"InfluxDB at {s.url} refused a query: {result['error']}")
        if isinstance(doc, dict) and "error" in doc:
            raise ReportError(f"InfluxDB at {s.url} refused the query: {doc['error']}")
        return results

    @staticmethod
    def series(result: dict[str, Any]) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
        out = []
        for s in result.get("series", []):
            rows = [dict(zip(s["columns"], values, strict=True)) for values in s.get("values", [])]
            out.append(({k: v or "" for k, v in s.get("tags", {}).items()}, rows))
        return out

    def figures(self, window: Window) -> Figures:
        figures = Figures(window)
        where = f'FROM "journey" WHERE {FINAL} AND {span(window)}'
        statements = [f'SELECT count("final") {where}{extra} {GROUP}' for extra in COUNTS.values()]
        statements += [f'SELECT first("duration_ms") {where} {GROUP}', f'SELECT last("duration_ms") {where} {GROUP}']
        statements.append(f'SELECT {DISRUPTION_FIELDS} FROM "disruption" WHERE time >= '
                          f'{window.from_ms - DISRUPTION_LOOKBACK_MS}ms AND time < {window.to_ms}ms '
                          'GROUP BY "journey","region","agent","state"')
        with ThreadPoolExecutor(1 + DURATION_SLICES) as pool:
            counted = pool.submit(self.query, statements)
            slices = list(pool.map(self._durations, window.slices(DURATION_SLICES)))
            results = counted.result()
        for name, result in zip([*COUNTS, "first", "last"], results, strict=False):
            for tags, rows in self.series(result):
                cell = figures.cell(tags.get("journey", ""), tags.get("region", ""))
                row = rows[0] if rows else {}
                if name == "first":
                    cell.seen(int(row["time"]), None)
                elif name == "last":
                    cell.seen(None, int(row["time"]))
                else:
                    setattr(cell, name, getattr(cell, name) + int(row.get("count", 0)))
                if name == "runs":
                    cell.agents.add(tags.get("agent", ""))
                    cell.kind = tags.get("kind") or cell.kind
                    cell.owner = tags.get("owner") or cell.owner
                    cell.customer_reason = tags.get("customer_reason") or cell.customer_reason
                    cell.weight = tags.get("weight") or cell.weight
        self._quantiles(figures, slices)
        found = self._disruptions(results[-1], window)
        add_minutes(figures.cell, found, window, self._last_runs(found, window))
        return figures

    def _durations(self, window: Window) -> dict[tuple[str, str], list[float]]:
        """On-time durations of final runs per journey × region, one slice of the window."""
        [result] = self.query([f'SELECT "duration_ms" FROM "journey" WHERE {FINAL} AND "lagged" = false AND '
                               f'{span(window)} GROUP BY "journey","region"'])
        out: dict[tuple[str, str], list[float]] = {}
        for s in result.get("series", []):
            tags = s.get("tags", {})
            column = s["columns"].index("duration_ms")
            out.setdefault((tags.get("journey", ""), tags.get("region", "")), []).extend(
                float(v[column]) for v in s.get("values", []) if v[column] is not None)
        return out

    @staticmethod
    def _quantiles(figures: Figures, slices: list[dict[tuple[str, str], list[float]]]) -> None:
        """Exact nearest-rank quantiles per journey × region and per journey, as the SQLite store gives
        (one read of the durations: InfluxQL's percentile() would read them once per percentile)."""
        per_cell: dict[tuple[str, str], list[float]] = {}
        for part in slices:
            for key, values in part.items():
                per_cell.setdefault(key, []).extend(values)
        per_journey: dict[str, list[float]] = {}
        for (journey, region), values in per_cell.items():
            values.sort()
            cell = figures.cells.get((journey, region))
            if cell is not None:
                cell.latency = Quantiles.of_sorted(values)
                if cell.kind != "uptime":
                    per_journey.setdefault(journey, []).extend(values)
        figures.journey_latency = {j: Quantiles.of_sorted(sorted(v)) for j, v in per_journey.items()}

    def _disruptions(self, result: dict[str, Any], window: Window) -> list[Disruption]:
        points = []
        for tags, rows in self.series(result):
            for row in rows:
                fields = {k: v for k, v in row.items() if k != "time" and v is not None}
                points.append((int(row["time"]), tags, fields))
        points.sort(key=lambda p: (p[0], p[1].get("state") != "open"))
        return [d for d in pair(points) if d.end_ms is None or d.end_ms >= window.from_ms]

    def _last_runs(self, found: list[Disruption], window: Window) -> Any:
        still_open = [d for d in found if d.end_ms is None]
        last: dict[tuple[str, str, str], int] = {}
        if still_open:
            statements = [f'SELECT last("duration_ms") FROM "journey" WHERE {FINAL} AND "journey" = '
                          f'{literal(d.journey)} AND "region" = {literal(d.region)} AND "agent" = {literal(d.agent)} '
                          f"AND time >= {d.start_ms}ms AND time < {window.to_ms}ms" for d in still_open]
            for d, result in zip(still_open, self.query(statements), strict=True):
                rows = [row for _, found_rows in self.series(result) for row in found_rows]
                if rows:
                    last[(d.journey, d.region, d.agent)] = int(rows[0]["time"])
        return lambda d: last.get((d.journey, d.region, d.agent))

    def disruptions(self, window: Window) -> list[Disruption]:
        [result] = self.query([f'SELECT {DISRUPTION_FIELDS} FROM "disruption" WHERE time >= '
                               f"{window.from_ms - DISRUPTION_LOOKBACK_MS}ms AND time < {window.to_ms}ms "
                               'GROUP BY "journey","region","agent","state"'])
        return self._disruptions(result, window)

    def failed_runs(self, window: Window, limit: int) -> list[FailedRun]:
        """The newest `limit` failed final runs, newest first (per series, then merged)."""
        [result] = self.query([f'SELECT "failed_step", "error", "error_message", "trace_id", "success" FROM "journey" '
                               f'WHERE {FINAL} AND "success" = false AND {span(window)} '
                               f'GROUP BY "journey", "region", "agent" ORDER BY time DESC LIMIT {int(limit)}'])
        found = [FailedRun(int(row["time"]), tags.get("journey", ""), tags.get("region", ""), tags.get("agent", ""),
                           *(str(row.get(k) or "") for k in ("failed_step", "error", "error_message", "trace_id")))
                 for tags, rows in self.series(result) for row in rows]
        return sorted(found, key=lambda r: r.time_ms, reverse=True)[:limit]

    def timeline(self, window: Window, bucket_ms: int) -> Timeline:
        count = max(1, -(-(window.to_ms - window.from_ms) // bucket_ms))
        timeline = Timeline(window.from_ms, bucket_ms, count)
        where = f'FROM "journey" WHERE {FINAL} AND {span(window)}'
        by = f'GROUP BY time({bucket_ms}ms, {window.from_ms % bucket_ms}ms), "journey", "region", "kind" fill(none)'
        outcomes = {"passed": "\"outcome\" = 'passed'", "degraded": "\"outcome\" = 'degraded'",
                    "failed": '"success" = false'}
        statements = [f'SELECT count("duration_ms") {where} AND {cond} {by}' for cond in outcomes.values()]
        statements.append(f'SELECT percentile("duration_ms", 95) {where} AND "lagged" = false {by}')
        results = self.query(statements)
        for name, result in zip([*outcomes, "p95"], results, strict=True):
            for tags, rows in self.series(result):
                series = timeline.series(tags.get("journey", ""), tags.get("region", ""), tags.get("kind") or "journey")
                for row in rows:
                    bucket = series[timeline.index(int(row["time"]))]
                    if name == "p95":
                        bucket.p95_ms = row.get("percentile")
                    else:
                        setattr(bucket, name, getattr(bucket, name) + int(row.get("count") or 0))
        timeline.bands = [Band(d.journey, d.region, d.start_ms, d.end_ms, d.uptime_ok, d.reason)
                          for d in self.disruptions(window)]
        return timeline
