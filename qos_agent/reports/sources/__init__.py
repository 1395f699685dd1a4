"""Where the scorecard's figures come from: one query layer per source, behind one interface.

`Source.figures(window)` reads one window into `Figures` (the runs, outcomes, latency quantiles and
disruption minutes per journey × region); `Source.timeline(window, bucket_ms)` the runs over time
for the HTML charts; `Source.disruptions(window)` the disruptions one by one, where the source keeps
them (Prometheus keeps only their minutes: None); `Source.failed_runs(window, limit)` the newest
failed final runs with their trace ids (None from Prometheus, which keeps no runs). Each raises
`ReportError` with one line for the user when it cannot read.
"""

from __future__ import annotations

from typing import Protocol

from qos_agent.reports.figures import Disruption, FailedRun, Figures, Timeline
from qos_agent.reports.period import Window

SOURCES = ("sqlite", "influxdb", "prometheus")


class Source(Protocol):
    description: str  # "SQLite store .qos-agent/qos-results.db", "InfluxDB http://… (database qos)"

    def figures(self, window: Window) -> Figures: ...

    def timeline(self, window: Window, bucket_ms: int) -> Timeline: ...

    def disruptions(self, window: Window) -> list[Disruption] | None: ...

    def failed_runs(self, window: Window, limit: int) -> list[FailedRun] | None: ...
