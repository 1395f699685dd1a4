"""A sink's credentials are added when a batch is sent and appear nowhere else, in any encoding.

A real `qos-agent run` with two webhooks: a Slack-format one whose URL path is the secret (as
Slack's is) answering 404 and echoing the path, and a PagerDuty one whose `routing_key` the
receiver echoes in its refusal (dead letter). Their values come from variables whose names do not
look secret, so only the sinks' own rule protects them. Then the agent's log, every file under
state_dir (the spool .db files byte for byte), /healthz and /metrics are searched for either secret,
raw, URL-encoded and JSON-escaped; the receivers prove the credentials did go out on the wire.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from aiohttp import web

from tests.support.cli import start
from tests.support.influx import free_port

SLACK_PATH = "/services/T0SECRET42/B0SECRET42/Xx9SecretPathToken77"
ROUTING_KEY = "R0utingKeyR0utingKey99"
SECRETS = (SLACK_PATH, SLACK_PATH.strip("/"), "Xx9SecretPathToken77", ROUTING_KEY)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
AGENT = """\
version: 1
agent: {{state_dir: state, interval: 300ms, name: agent-cred, listen: "127.0.0.1:{port}"}}
exporters:
  - {{type: sqlite}}
  - {{type: webhook, format: slack, url: "${{HOOK}}"}}
  - {{type: webhook, format: pagerduty, url: "{receiver}/v2/enqueue", routing_key: "${{PD_KEY}}"}}
journeys:
  - name: checkout
    steps:
      - name: pay
        timeout: 1s
        http: {{url: "http://127.0.0.1:1/pay"}}
"""


def spellings(secret: str) -> set[str]:
    """The secret as it could be written: raw, URL-encoded (both ways), JSON-escaped."""
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/")}


def found_in(text: bytes, where: str) -> list[str]:
    return [f"{where}: {form!r}" for s in SECRETS for form in spellings(s) if form.encode() in text]


class Hooks:
    """Slack's answer to a wrong hook (404, echoing the path) and PagerDuty's to a wrong key (400, echoing it)."""

    def __init__(self) -> None:
        self.slack: list[str] = []
        self.pagerduty: list[dict[str, object]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _slack(self, request: web.Request) -> web.Response:
        self.slack.append(request.path)
        return web.Response(status=404, text=f"no_service: {request.path}")

    async def _pagerduty(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.pagerduty.append(body)
        return web.json_response({"status": "invalid event", "errors": [f"unknown routing_key {body['routing_key']}"]},
                                 status=400)

    async def start(self) -> Hooks:
        app = web.Application()
        app.router.add_post(SLACK_PATH, self._slack)
        app.router.add_post("/v2/enqueue", self._pagerduty)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def get(url: str) -> bytes:
    try:
        with _NO_PROXY.open(url, timeout=5) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as e:  # 503 still has a body
        return bytes(e.read())


async def test_a_slack_url_and_a_routing_key_appear_nowhere(tmp_path: Path) -> None:
    hooks = await Hooks().start()
    port = free_port()
    (tmp_path / "journeys.yaml").write_text(AGENT.format(port=port, receiver=hooks.url))
    proc = start("run", str(tmp_path / "journeys.yaml"), "--duration", "60s", cwd=tmp_path,
                 env={"HOOK": hooks.url + SLACK_PATH, "PD_KEY": ROUTING_KEY})
    try:
        deadline = time.monotonic() + 40
        while (not hooks.slack or not hooks.pagerduty) and time.monotonic() < deadline and proc.poll() is None:
            await asyncio.sleep(0.2)
        assert hooks.slack and hooks.pagerduty, "the disruption never reached both hooks"
        await asyncio.sleep(1.5)  # the 404 retried (and logged) a few times
        health = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
        metrics = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.terminate()
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        await hooks.close()
    assert all(body["routing_key"] == ROUTING_KEY for body in hooks.pagerduty)  # it did go out, when sent
    assert b"HTTP 404 from http://127.0.0.1:" in health and b"HTTP 400 from" in health  # the failures are told...
    leaks = found_in((out + err).encode(), "log") + found_in(health, "/healthz") + found_in(metrics, "/metrics")
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" and "spool" in p.parts for p in files)
    for path in files:
        leaks += found_in(path.read_bytes(), str(path.relative_to(tmp_path)))
    assert leaks == []  # ...without the secret
