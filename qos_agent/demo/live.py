"""`qos-agent demo`: the hidden disruption, shown in one command.

The demo service, plus three agents (eu-west, us-east, ap-south) in this process sharing one
embedded store. After a while the demo breaks checkout's payment for ap-south only, while /health
stays green everywhere: the uptime journey passes, the checkout journey fails, and the evaluator opens
a disruption with uptime_ok=true. Then the fault heals, the disruption closes, and the report shows
it. A live terminal view follows along (plain event lines when the output is not a terminal).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from exporters.files.sqlite import DEFAULT_PATH as DEFAULT_DB
from qos_agent.config.loader import load_config
from qos_agent.demo import FaultBook, FaultRule, start_demo
from qos_agent.demo.alerting import AlertWatch, LocalAlertmanager
from qos_agent.model import JourneyResult, Point
from qos_agent.runloop.agent import Agent

REGIONS = ("eu-west", "us-east", "ap-south")
BROKEN_REGION = "ap-south"
JOURNEYS = ("checkout", "billing", "uptime")

DEMO_JOURNEYS = """\
version: 1
agent:
  name: demo-{region}
  interval: {interval}
  state_dir: {state_dir}
  listen: 127.0.0.1:0
defaults:
  timeout: 5s
  headers: {{User-Agent: qos-agent-demo}}
variables:
  base: {base}
exporters:
  - type: sqlite
    path: {state_dir}/qos-results.db{alert_sink}
journeys:
  - name: checkout
    slo: {{success: 99%, latency: 2s}}
    alert: {{severity: page}}
    steps:
      - name: login
        http: {{method: POST, url: "{{{{ base }}}}/api/login", json: {{user: demo, password: demo}}}}
        expect: {{status: 200}}
        extract: {{token: {{json: "$.token"}}}}
      - name: cart
        http: {{url: "{{{{ base }}}}/api/cart/demo-cart", headers: {{Authorization: "Bearer {{{{ token }}}}"}}}}
        expect: {{status: 200}}
      - name: pay
        http:
          method: POST
          url: "{{{{ base }}}}/api/pay"
          json: {{cart_id: demo-cart, card: "4242 4242 4242 4242"}}
        expect: {{status: 200, json: {{"$.status": {{equals: paid}}}}}}
  - name: billing
    steps:
      - name: login
        http: {{method: POST, url: "{{{{ base }}}}/api/login", json: {{user: demo, password: demo}}}}
        extract: {{token: {{json: "$.token"}}}}
      - name: invoices
        http: {{url: "{{{{ base }}}}/api/invoices", headers: {{Authorization: "Bearer {{{{ token }}}}"}}}}
        expect: {{status: 200}}
  - name: uptime
    kind: uptime
    steps:
      - name: health
        http: {{url: "{{{{ base }}}}/health"}}
        expect: {{status: 200}}
"""


@dataclass
class Timeline:
    interval_s: float = 3.0
    fault_at_s: float = 20.0
    heal_at_s: float = 45.0
    end_at_s: float = 75.0  # at the latest; the demo ends earlier once the disruption has closed


@dataclass
class _View:
    """What the live table shows: last outcome per region × journey, disruptions, events."""

    started: float = field(default_factory=time.monotonic)
    last: dict[tuple[str, str], str] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[bool]] = field(default_factory=dict)
    open: dict[tuple[str, str], Point] = field(default_factory=dict)
    closed: list[Point] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def event(self, text: str) -> str:
        line = f"[{self.elapsed():5.1f}s] {text}"
        self.events.append(line)
        return line

    def on_results(self, results: list[JourneyResult], disruptions: list[Point]) -> list[str]:
        lines = []
        for r in results:
            if r.final:
                key = (r.region, r.journey)
                self.last[key] = str(r.outcome)
                self.runs.setdefault(key, []).append(r.outcome.ok)
        for p in disruptions:
            key = (str(p.tag("region")), str(p.tag("journey")))
            uptime = "uptime GREEN: hidden from uptime monitoring" if p.field("uptime_ok") else "uptime saw it"
            if p.tag("state") == "open":
                self.open[key] = p
                lines.append(self.event(f"DISRUPTION OPEN  {key[1]} in {key[0]}: {p.field('reason')} ({uptime})"))
            else:
                self.open.pop(key, None)
                self.closed.append(p)
                lines.append(self.event(f"DISRUPTION CLOSED {key[1]} in {key[0]} after {p.field('duration_s')}s "
                                        f"({p.field('hidden_minutes')} hidden minutes)"))
        return lines

    def render(self) -> Group:
        table = Table(title=f"qos-agent demo — {self.elapsed():.0f}s", title_justify="left")
        table.add_column("region")
        for j in JOURNEYS:
            table.add_column(j)
        table.add_column("disruption")
        colours = {"passed": "green", "degraded": "yellow", "failed": "red bold"}
        for region in REGIONS:
            cells: list[Text | str] = [region]
            for j in JOURNEYS:
                outcome = self.last.get((region, j), "…")
                runs = self.runs.get((region, j), [])
                ok = f" {sum(runs)}/{len(runs)}" if runs else ""
                cells.append(Text(outcome + ok, style=colours.get(outcome, "dim")))
            opened = [p for (r, _), p in self.open.items() if r == region]
            cells.append(Text(", ".join(f"{p.tag('journey')} OPEN" + (" (uptime green)" if p.field("uptime_ok")
                                                                         else "") for p in opened) or "none",
                              style="red bold" if opened else "green"))
            table.add_row(*cells)
        return Group(table, Text("\n".join(self.events[-8:])))


ALERT_SINK = """
  - {{type: alertmanager, url: "{url}", resend: 10s, name: demo-alerts-{region}}}"""


async def run_demo(state_dir: Path, timeline: Timeline, console: Console, alertmanager: str = "") -> Path:
    """Run the whole demo; return the path of the shared store. `alertmanager`: a URL, `local`, or off."""
    state_dir.mkdir(parents=True, exist_ok=True)
    db = state_dir / DEFAULT_DB
    # The story starts afresh: no store, and no disruption an earlier demo left open (its agents' files).
    for stale in [*state_dir.glob(f"{DEFAULT_DB}*"), *state_dir.glob("disruptions/demo-*.json")]:
        stale.unlink()
    local = LocalAlertmanager(state_dir / "alertmanager") if alertmanager == "local" else None
    am_url = await local.start() if local is not None else alertmanager.rstrip("/")
    faults = FaultBook()
    runner, base = await start_demo(faults=faults)
    view = _View()
    live = console.is_terminal
    agents = []
    for region in REGIONS:
        path = state_dir / f"journeys-{region}.yaml"
        sink = ALERT_SINK.format(url=am_url, region=region) if am_url else ""
        path.write_text(DEMO_JOURNEYS.format(region=region, interval=f"{timeline.interval_s:g}s",
                                             state_dir=state_dir, base=base, alert_sink=sink))
        agent = Agent(load_config(path, env={}, region=region), str(path), region)

        def listen(results: list[JourneyResult], points: list[Point]) -> None:
            for line in view.on_results(results, points):
                if not live:
                    console.print(line, markup=False)

        agent.listeners.append(listen)
        agents.append(agent)

    def say(text: str) -> None:
        line = view.event(text)
        if not live:
            console.print(line, markup=False)

    async def watch_alerts(url: str) -> None:
        """Tell the story's end: the alert firing in Alertmanager, then resolved there."""
        watch, fired = AlertWatch(url), False
        while view.elapsed() < timeline.end_at_s + 15:
            active = [a for a in await watch.active() if a.get("region") == BROKEN_REGION]
            if active and not fired:
                fired = True
                labels = ", ".join(f'{k}="{v}"' for k, v in sorted(active[0].items()))
                say(f"ALERT FIRING in Alertmanager {url}: {{{labels}}}")
            elif fired and not active:
                say(f"ALERT RESOLVED in Alertmanager {url}")
                return
            await asyncio.sleep(0.25)
        say(f"ALERT {'still firing' if fired else 'never seen'} in Alertmanager {url} when the demo ended")

    watcher: asyncio.Task[None] | None = None

    async def script() -> None:
        nonlocal watcher
        say(f"demo service on {base}; agents in {', '.join(REGIONS)} every {timeline.interval_s:g}s")
        if am_url:
            say(f"alerts go to Alertmanager {am_url}" + (" (started here)" if local is not None else ""))
            watcher = asyncio.create_task(watch_alerts(am_url))
        await asyncio.sleep(timeline.fault_at_s)
        rule = faults.add(FaultRule(path="/api/pay", region=BROKEN_REGION, status=503))
        say(f"FAULT: /api/pay answers 503 for {BROKEN_REGION} only; /health stays 200 everywhere")
        await asyncio.sleep(max(0.0, timeline.heal_at_s - view.elapsed()))
        faults.remove(rule)
        say("HEALED: the fault is removed")
        while view.elapsed() < timeline.end_at_s and (view.open or not view.closed):
            await asyncio.sleep(0.25)
        if watcher is not None:
            await watcher
        await asyncio.sleep(0.5)
        for agent in agents:
            agent.stop_event.set()

    try:
        tasks = [asyncio.create_task(a.run(handle_signals=False)) for a in agents]
        if live:
            with Live(view.render(), console=console, refresh_per_second=4) as screen:
                refresher = asyncio.create_task(_refresh(screen, view))
                await script()
                await asyncio.gather(*tasks)
                refresher.cancel()
                screen.update(view.render())
        else:
            await script()
            await asyncio.gather(*tasks)
    finally:
        for agent in agents:
            agent.stop_event.set()
        await runner.cleanup()
        if local is not None:
            local.stop()
    return db


async def _refresh(screen: Live, view: _View) -> None:
    while True:
        await asyncio.sleep(0.25)
        screen.update(view.render())
