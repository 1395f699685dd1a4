"""A reload keeps the timing of journeys whose meaning did not change (issue 23): a comment above a
journey, blank lines, another key order or the line it starts on are not changes; a new interval or
step is. Through the real reload path (the vetting child, then the load in a thread), in process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from qos_agent.config.loader import load_config
from qos_agent.model import Journey
from qos_agent.runloop.agent import Agent
from tests.support import demo as demo_support
from tests.test_health import running

demo_service = demo_support.demo_service

FILE = """\
version: 1
agent: {{state_dir: state, region: eu-west, name: a1, listen: "127.0.0.1:0", interval: 1s}}
defaults: {{headers: {{User-Agent: qos-agent, X-Team: pay}}}}
variables: {{base: "{url}"}}
journeys:
  - name: uptime
    kind: uptime
    steps:
      - name: health
        http: {{url: "{{{{ base }}}}/health"}}
        expect: {{status: 200}}
  - name: pay
    tags: {{team: pay, stage: buy}}
    steps:
      - name: pay
        http:
          method: POST
          url: "{{{{ base }}}}/api/pay"
          headers: {{X-A: a, X-B: b}}
          json: {{cart_id: c1, card: "4242 4242 4242 4242"}}
        expect: {{status: 200, headers: {{content-type: {{contains: json}}, x-none: {{exists: false}}}}}}
"""
# The same file as an editor might leave it: comments, blank lines, other key orders, every journey
# on other lines. Nothing a journey means has changed.
REWRITTEN = """\
# journeys of the checkout team
version: 1
agent: {{interval: 1s, listen: "127.0.0.1:0", name: a1, region: eu-west, state_dir: state}}
defaults: {{headers: {{X-Team: pay, User-Agent: qos-agent}}}}
variables: {{base: "{url}"}}

journeys:
  # the uptime check of the same service
  - kind: uptime
    name: uptime
    steps:
      - http: {{url: "{{{{ base }}}}/health"}}
        name: health
        expect: {{status: 200}}

  - steps:
      - name: pay
        expect: {{headers: {{x-none: {{exists: false}}, content-type: {{contains: json}}}}, status: 200}}
        http:
          json: {{card: "4242 4242 4242 4242", cart_id: c1}}
          headers: {{X-B: b, X-A: a}}
          url: "{{{{ base }}}}/api/pay"
          method: POST
    tags: {{stage: buy, team: pay}}   # who owns it
    name: pay
"""


async def reload_now(agent: Agent) -> None:
    """SIGHUP's path: the bytes vetted by the limited child, loaded in a thread, applied on the loop."""
    agent.reloader.request()
    await agent.reloader.wait()


async def test_an_edit_that_changes_no_meaning_keeps_every_journeys_timing(
        tmp_path: Path, demo_service: demo_support.DemoService) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(FILE.format(url=demo_service.url))
    async with running(path) as (agent, _):
        loops = dict(agent.scheduler._loops)  # one task per journey: its timing (offset, ticks) lives in it
        await asyncio.sleep(1.2)
        path.write_text(REWRITTEN.format(url=demo_service.url))
        await reload_now(agent)
        assert (agent.reloads, agent.reload_error) == (1, "")
        assert agent.scheduler.journeys["pay"].location.line == 16  # the new objects run...
        assert agent.scheduler._loops == loops  # ...on the old timing: no task was replaced

        # A real change re-plans that journey alone: a new interval, then a new step header.
        path.write_text(REWRITTEN.format(url=demo_service.url).replace("    tags:", "    interval: 2s\n    tags:"))
        await reload_now(agent)
        assert agent.reload_error == "" and agent.scheduler.journeys["pay"].interval_s == 2.0
        assert agent.scheduler._loops["uptime"] is loops["uptime"]
        assert agent.scheduler._loops["pay"] is not loops["pay"]
        replanned = agent.scheduler._loops["pay"]
        path.write_text(path.read_text().replace("X-B: b", "X-B: c"))
        await reload_now(agent)
        assert agent.reload_error == "" and agent.scheduler._loops["pay"] is not replanned
        assert agent.scheduler._loops["uptime"] is loops["uptime"]


def test_meaning_is_the_yaml_data_not_the_text(tmp_path: Path) -> None:
    def pay(text: str, env: dict[str, str] | None = None) -> Journey:
        path = tmp_path / "j.yaml"
        path.write_text(text.format(url="${BASE:-http://127.0.0.1:1}"))
        return next(j for j in load_config(path, env=env or {}).journeys if j.name == "pay")

    base = pay(FILE)
    assert base.meaning and base.same_meaning(pay(REWRITTEN)) and base != pay(REWRITTEN)  # locations differ
    first = "      - name: first\n        http: {{url: \"{{{{ base }}}}/a\"}}\n"
    ahead, after = pay(FILE.replace("      - name: pay\n", first + "      - name: pay\n")), pay(FILE + first)
    assert {s.name for s in ahead.steps} == {s.name for s in after.steps}
    assert not ahead.same_meaning(after)  # a list's order is meaning: the steps run in another order
    assert not base.same_meaning(pay(FILE.replace("X-Team: pay", "X-Team: ops")))  # defaults: headers
    assert not base.same_meaning(pay(FILE, env={"BASE": "http://127.0.0.1:2"}))  # ${VAR} is read anew
    assert not base.same_meaning(pay(FILE.replace("interval: 1s}", "interval: 2s}")))  # the default interval
