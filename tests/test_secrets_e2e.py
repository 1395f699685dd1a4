"""A secret with ordinary punctuation never appears in any output, in any encoding.

`p@ss w/rd+"\\é` goes through sample-like journeys: a query parameter (yarl's encoding), a JSON
body echoed back (JSON-escaped, then Python repr in the assertion message), a form body, and a
browser form submitted in latin-1 (Chromium's URL encoding, a trace's network log). Then `check`
(JSON and JUnit) and `run` (SQLite, JSON lines, real influxd, logs, spool, screenshots, traces) and
EVERY artifact is grepped for every spelling of the secret (tests/test_secrets.py's `spellings`).
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.cli import qos
from tests.support.components import needs
from tests.support.influx import InfluxServer, needs_influxd
from tests.test_secrets import SECRET, spellings

pytestmark = [pytest.mark.influx, pytest.mark.browser, pytest.mark.slow, needs_influxd,
              needs(Path("/usr/bin/chromium").exists(), "Debian chromium")]

FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title></head><body>
<form method="get" action="/landing" accept-charset="ISO-8859-1">
<input name="pw" id="pw" type="text"><button id="go" type="submit">Go</button></form></body></html>"""


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"query": dict(request.query), "raw": await request.text(),
                              "auth": request.headers.get("Authorization", "")})


async def _form(request: web.Request) -> web.Response:
    return web.Response(text=FORM, content_type="text/html")


async def _landing(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><html><body><h1>welcome</h1></body></html>", content_type="text/html")


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest_asyncio.fixture
async def shop() -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes([web.route("*", "/api/echo", _echo), web.post("/api/login", _echo), web.get("/form", _form),
                    web.get("/landing", _landing), web.get("/health", _health)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


JOURNEYS = """\
version: 1
agent: {{state_dir: state, interval: 2s, name: e2e, listen: "off"}}
variables: {{base: "${{SHOP_URL}}"}}
exporters:
  - type: sqlite
  - type: jsonl
    path: results.jsonl
  - type: influxdb
    url: {influx}
    database: qos
journeys:
  - name: api
    steps:
      - name: query
        http: {{url: "{{{{ base }}}}/api/echo", params: {{pw: "${{SHOP_PASSWORD}}"}}}}
        expect: {{json: {{"$.query.pw": {{equals: wrong}}}}}}
      - name: login
        always_run: true
        http: {{method: POST, url: "{{{{ base }}}}/api/login", json: {{password: "${{SHOP_PASSWORD}}"}}}}
        expect: {{body_contains: "${{SHOP_PASSWORD}}-never", json: {{"$.raw": {{equals: x}}}}}}
      - name: form
        always_run: true
        http: {{method: POST, url: "{{{{ base }}}}/api/login", form: {{password: "${{SHOP_PASSWORD}}"}},
               headers: {{Authorization: "Basic ${{SHOP_PASSWORD}}"}}}}
        expect: {{json: {{"$.raw": {{equals: x}}, "$.auth": {{equals: y}}}}}}
  - name: shop
    steps:
      - name: browse
        browser:
          - goto: "{{{{ base }}}}/form"
          - fill: {{selector: "#pw", value: "${{SHOP_PASSWORD}}"}}
          - click: "#go"
          - wait_for: "h1"
          - expect_url: {{regex: "/never$", timeout: 1s}}
  - name: health
    kind: uptime
    steps:
      - name: health
        http: {{url: "{{{{ base }}}}/health"}}
"""


def texts_under(root: Path) -> dict[str, str]:
    """Every file below root (zips opened) and every file name, as latin-1 text (bytes 1:1)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        out[f"name of {path}"] = path.name
        if not path.is_file():
            continue
        data = path.read_bytes()
        out[str(path)] = data.decode("latin-1")
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    out[f"{path}!{info.filename}"] = z.read(info).decode("latin-1")
    return out


async def test_a_punctuated_secret_never_appears_anywhere(tmp_path: Path, shop: str, influxd: InfluxServer) -> None:
    influxd.query("CREATE DATABASE qos")
    (tmp_path / "journeys.yaml").write_text(JOURNEYS.format(influx=influxd.url))
    env = {"SHOP_URL": shop, "SHOP_PASSWORD": SECRET, "QOS_BROWSER_TRACE": "on"}
    checked = await asyncio.to_thread(qos, "check", "journeys.yaml", "--format", "json", "--junit", "out.xml", env=env, cwd=tmp_path,
                  timeout=120)
    assert checked.returncode == 1, checked.stderr  # the journeys fail on purpose, quoting what they saw
    ran = await asyncio.to_thread(qos, "run", "journeys.yaml", "--duration", "8s", env=env, cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stderr
    influx = influxd.query('SELECT * FROM "journey", "step", "disruption"', db="qos")

    artifacts = {"check stdout": checked.stdout, "check stderr": checked.stderr, "run stdout": ran.stdout,
                 "run stderr": ran.stderr, "influxd": json.dumps(influx, ensure_ascii=False),
                 "influxd ascii": json.dumps(influx), **texts_under(tmp_path / "state"),
                 "junit": (tmp_path / "out.xml").read_text(encoding="utf-8"),
                 "jsonl": (tmp_path / "state" / "results.jsonl").read_text(encoding="utf-8")}
    # The journeys did what they should, so the grep below means something:
    report = json.loads(checked.stdout)
    steps = {s["name"]: s for j in report["journeys"] for s in j["steps"]}
    assert "***" in steps["query"]["error_message"] and "***" in steps["login"]["error_message"]
    assert steps["query"]["url"].startswith(f"{shop}/api/echo?pw=")  # ${SHOP_URL} is not a secret: shown
    assert steps["browse"]["outcome"] == "failed" and "landing" in steps["browse"]["error_message"]
    assert any(name.endswith(".png") for name in artifacts) and any(name.endswith(".zip") for name in artifacts)
    assert any("landing?pw=" in text for name, text in artifacts.items() if "!" in name)  # the trace's log
    assert f"{shop}/api/echo" in artifacts["jsonl"] and "***" in artifacts["influxd"]
    leaks = [(form_name, where) for form_name, form in spellings(SECRET).items() for where, text in artifacts.items()
             if form in text]
    assert leaks == []
