"""The words of journeys.yaml the core parses: the keys of each section, the name rules.

The parsers read with these lists (an unknown key is a located problem with a did-you-mean) and the
JSON Schema generator describes exactly these keys (qos_agent/config/schema.py), so the two agree.
A step kind's or an exporter's own keys belong to that plug-in, not here.
"""

from __future__ import annotations

import re

from qos_agent.config.metadata import KEYS as METADATA_KEYS

TOP_KEYS = ("version", "agent", "defaults", "variables", "exporters", "journeys", "secrets")
AGENT_KEYS = ("region", "name", "interval", "concurrency", "browser_concurrency", "state_dir", "listen", "shard",
              "sink_stale_after", "max_loop_lag", "loop", "traceparent", "trace_url")
LOOPS = ("auto", "asyncio", "uvloop")
DEFAULT_KEYS = ("timeout", "retries", "headers", "journey_timeout", "disruption")
DISRUPTION_KEYS = ("open_after", "close_after", "window", "min_failures", "min_runs")
JOURNEY_KEYS = ("name", "description", "kind", "interval", "regions", "tags", "slo", "variables", "steps",
                "retries", "timeout", "headers", "disruption", "alert", "uptime", "traceparent", *METADATA_KEYS)
ALERT_KEYS = ("severity", "runbook")
STEP_KEYS = ("name", "timeout", "always_run", "degraded_latency", "extract")
EXTRACT_SOURCES = ("json", "header", "regex", "cookie", "field")
EXTRACT_KEYS = (*EXTRACT_SOURCES, "secret")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # the schema's pattern; the loader uses safety.NAME
MIN_INTERVAL_S = 0.1  # a journey runs at most 10 times a second (docs/journeys.md, "Limits", says why not 1s)
DEFAULT_SQLITE = "sqlite"
