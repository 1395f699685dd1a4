"""An alert carries the failed run's trace (issue 24): the page links straight to the backend's side.

A real agent process, a real Alertmanager and a webhook (json and Slack) receiver; a fault breaks
checkout. The alert's `trace_id` is the trace of a failed run the store holds, and `trace_url` is
`agent.trace_url` rendered with it: an Alertmanager annotation, the webhook's fields, a Slack link.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.alertmanager import AlertmanagerServer, Receiver, require_alertmanager
from tests.support.demo import DemoProcess
from tests.test_alerting_e2e import INTERVAL_S, RESEND_S, AgentRun, am_sink, ours, receiver

__all__ = ["receiver"]  # the fixture, imported for pytest

TEMPO = "https://tempo.example/explore?traceId={trace_id}"


@pytest.fixture
def demo() -> Iterator[DemoProcess]:
    with DemoProcess() as service:
        yield service


def failed_traces(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT json_extract(fields, '$.trace_id') FROM points WHERE measurement = 'journey' "
                            "AND json_extract(tags, '$.journey') = 'checkout' AND json_extract(fields, '$.success') = 0")
        return {r[0] for r in rows}


async def test_the_alert_links_the_failed_runs_trace(tmp_path: Path, demo: DemoProcess, receiver: Receiver) -> None:
    require_alertmanager()
    am = AlertmanagerServer(tmp_path / "am")
    am.start()
    exporters = "\n".join([
        "  - {type: sqlite}",
        am_sink(am.url),
        f"  - {{type: webhook, url: '{receiver.url}', format: json}}",
        f"  - {{type: webhook, url: '{receiver.url}', format: slack, name: slack}}",
    ])
    agent = AgentRun(tmp_path / "agent", demo.url, exporters)
    journeys = agent.home / "journeys.yaml"
    journeys.write_text(journeys.read_text().replace("agent: {", f'agent: {{trace_url: "{TEMPO}", ', 1))
    agent.start()
    try:
        demo.add_faults(["path=/api/pay,status=503"])
        (alert,) = ours(await am.wait_for(lambda a: len(ours(a)) == 1, 2 * INTERVAL_S + RESEND_S + 5))

        def told(bodies: list[dict[str, Any]]) -> bool:
            return any("key" in b for b in bodies) and any("blocks" in b for b in bodies)

        assert await receiver.wait_for(told, 15)
    finally:
        agent.stop()
        am.stop()
    trace_id = alert["annotations"]["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id in failed_traces(agent.home / "state" / "qos-results.db")
    link = TEMPO.replace("{trace_id}", trace_id)
    assert alert["annotations"]["trace_url"] == link
    (as_json,) = [b for b in receiver.bodies if "key" in b and b["event"] == "open"]
    assert as_json["trace_id"] == trace_id and as_json["trace_url"] == link
    (slack,) = [b for b in receiver.bodies if "blocks" in b and ":red_circle:" in b["text"]]
    assert f"<{link}|trace of the last failed run>" in slack["blocks"][1]["elements"][0]["text"]
