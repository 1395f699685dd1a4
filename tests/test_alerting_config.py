"""The alert sinks' part of journeys.yaml: what a good file becomes, and `check` never alerting."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from exporters.alerts.config import PAGERDUTY_URL, AlertmanagerSpec, WebhookSpec
from qos_agent.config.loader import load_config
from tests.support.cli import qos

HEAD = """\
version: 1
agent: {state_dir: state}
exporters:"""
TAIL = """
journeys:
  - name: checkout
    alert: {severity: page, runbook: "https://wiki.example/checkout"}
    steps:
      - name: s
        http: {url: "http://127.0.0.1:1/x"}
"""


def parse_exporters(exporters: str, tmp: Path | None = None, env: dict[str, str] | None = None) -> list[Any]:
    """The specs the loader makes of an `exporters:` block (a YAML list, indented by two)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "journeys.yaml"
        path.write_text(HEAD + exporters + TAIL)
        return [e.spec for e in load_config(path, env=env or {}).exporters]


def test_alertmanager_and_webhook_specs() -> None:
    specs = parse_exporters("""
  - type: alertmanager
    name: am
    urls: [http://am-1:9093/, http://am-2:9093]
    resend: 30s
    labels: {team: payments}
    auth: {bearer: "${AM_TOKEN}"}
  - type: alertmanager
    url: http://127.0.0.1:9093
    auth: {username: qos, password: "${AM_PASSWORD}"}
  - type: webhook
    url: http://127.0.0.1:9000/hook
    format: slack
    headers: {X-Team: payments}
  - {type: webhook, format: pagerduty, routing_key: "${PD_ROUTING_KEY}"}
""", env={"AM_TOKEN": "tok", "AM_PASSWORD": "pw", "PD_ROUTING_KEY": "rk"})
    am1, am2, am3, slack, pd = specs
    assert (am1.url, am1.name, am2.url, am2.name) == ("http://am-1:9093", "am-1", "http://am-2:9093", "am-2")
    assert am1 == AlertmanagerSpec(url="http://am-1:9093", name="am-1", resend_s=30.0,
                                   labels=(("team", "payments"),), authorization="Bearer tok")
    assert am3.resend_s == 60.0 and am3.authorization == "Basic cW9zOnB3"  # base64("qos:pw")
    assert am3.name.startswith("alertmanager-")
    assert slack == WebhookSpec(url="http://127.0.0.1:9000/hook", name=slack.name, format="slack",
                                headers=(("X-Team", "payments"),))
    assert pd.url == PAGERDUTY_URL and pd.routing_key == "rk" and pd.format == "pagerduty"


def test_more_mistakes_located(tmp_path: Path) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(HEAD + """
  - type: alertmanager
    url: http://a:9093
    urls: [http://b:9093]
    labels: {severity: x, "bad-name": y}
    auth: {bearer: t, username: u}
  - type: webhook
    url: http://x/hook
    routing_key: k
""" + TAIL)
    r = qos("validate", str(path))
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    for line, what in ((6, "give 'url' or 'urls', not both"), (7, "label 'severity' is set by the agent itself"),
                       (7, "'bad-name' is not a valid label name"), (8, "'auth' has both a bearer token and basic auth"),
                       (11, "'routing_key' belongs to format: pagerduty")):
        assert any(f"journeys.yaml:{line}:" in x and what in x for x in out.splitlines()), (what, out)
    assert "Traceback" not in out


def test_check_never_alerts(tmp_path: Path) -> None:
    """`qos-agent check` with a failing journey and both alert sinks configured: nothing is posted."""
    posted: list[str] = []

    async def go() -> None:
        async def hook(request: web.Request) -> web.Response:
            posted.append(request.path)
            return web.json_response({})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        path = tmp_path / "journeys.yaml"
        path.write_text(HEAD + f"""
  - {{type: alertmanager, url: "http://127.0.0.1:{port}", resend: 10s}}
  - {{type: webhook, url: "http://127.0.0.1:{port}/hook"}}
""" + TAIL)
        for extra in ([], ["--export"]):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "qos_agent", "check", str(path), *extra, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 1, out.decode() + err.decode()  # the journey failed
        await asyncio.sleep(0.5)
        await runner.cleanup()

    asyncio.run(go())
    # check evaluates no disruptions, so even --export has nothing to alert on
    assert posted == []


def test_the_documented_alertmanager_route_is_valid_for_alertmanager(tmp_path: Path) -> None:
    """docs/alerting.md's route for Slack, PagerDuty and e-mail, checked by Alertmanager's own amtool."""
    import re
    import shutil
    import subprocess

    from tests.support.alertmanager import require_alertmanager

    require_alertmanager()
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool comes with prometheus-alertmanager"
    doc = (Path(__file__).resolve().parents[1] / "docs" / "alerting.md").read_text()
    match = re.search(r"Alertmanager does the rest.*?```yaml\n(.*?)```", doc, re.S)
    assert match is not None
    for name in ("slack-webhook-url", "pagerduty-routing-key", "smtp-password"):
        (tmp_path / name).write_text("x\n")
    config = tmp_path / "alertmanager.yml"
    config.write_text(match.group(1).replace("/etc/alertmanager/", f"{tmp_path}/"))
    r = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    # the route matches the labels the sink sets
    for label in ("alertname", "severity", "hidden_from_uptime", "journey", "region"):
        assert label in match.group(1)
