"""`/metrics` as OpenMetrics 1.0, for a scraper that asks for it: the only format with exemplars.

Prometheus asks for OpenMetrics first in its `Accept` header (the text format 0.0.4 after it), so a
scrape gets this page, whose duration buckets carry the trace id of a run that fell into them
(qos_agent/sinks/exemplars.py); a client that does not ask gets the text format, byte for byte as
before. Both halves of the page are OpenMetrics: prometheus_client's own writer for the agent's
registry, the journey series' fast writer (qos_agent/ops/journey_metrics.py) for the rest, and one
`# EOF` at the end.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.utils import floatToGoString

from qos_agent.sinks.exemplars import Exemplar

OPENMETRICS = "application/openmetrics-text"
CONTENT_TYPE = CONTENT_TYPE_LATEST  # application/openmetrics-text; version=1.0.0; charset=utf-8
EOF = b"# EOF\n"


def wants_openmetrics(accept: str) -> bool:
    """The `Accept` header names OpenMetrics (and does not refuse it with q=0)."""
    for offer in accept.split(","):
        media, *params = (part.strip() for part in offer.split(";"))
        if media.lower() == OPENMETRICS and not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
                                                    for p in params):
            return True
    return False


def exemplar_text(exemplar: Exemplar | None) -> str:
    """A bucket sample's exemplar suffix (`# {trace_id="..."} value timestamp`), or '' for none."""
    if exemplar is None:
        return ""
    trace_id, observed, time_ms = exemplar
    value: str = floatToGoString(observed)  # type: ignore[no-untyped-call]
    trace_id = trace_id.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f' # {{trace_id="{trace_id}"}} {value} {time_ms / 1000:.3f}'


def registry_openmetrics(registry: CollectorRegistry) -> bytes:
    """prometheus_client's OpenMetrics page of `registry`, without its `# EOF` (more families follow)."""
    page: bytes = openmetrics_latest(registry)  # type: ignore[no-untyped-call]
    assert page.endswith(EOF)
    return page[: -len(EOF)]
