"""What a command imports, guarded without timing (issue 17: `check` of HTTP journeys in ≤ 1 s).

Each command runs in its own interpreter, as a user runs it, and reports `sys.modules` when it ends:
a heavy module that a command does not need (pydantic through typer 0.29, Playwright, dnspython,
gRPC, protobuf, the durable store, jsonpath-ng for a file without a JSONPath) must stay out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import ROOT
from tests.support.demo import DemoProcess

SAMPLE = str(ROOT / "journeys.yaml")
HTTP_ONLY = ("onboarding", "billing", "support", "checkout", "certificate", "uptime")
RUN_AND_LIST = """
import json, sys
from qos_agent.cli import app
sys.argv = ["qos-agent", *sys.argv[1:]]
code = 0
try:
    app()
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1
print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""
# Never needed by a check of HTTP (and tls) steps with no exporter asked for.
NEVER_FOR_HTTP = ("pydantic", "playwright", "dns", "grpc", "grpc_health", "google.protobuf", "cramjam",
                  "influxdb_client", "prometheus_client", "websockets", "probes.net.dns", "probes.grpc.probe",
                  "probes.websocket.probe", "probes.net.tcp", "exporters.prometheus.remote_write", "exporters.influxdb.sink",
                  "exporters.alerts.alertmanager", "exporters.alerts.webhook", "qos_agent.delivery.durable",
                  "qos_agent.delivery.store", "qos_agent.ops.metrics", "qos_agent.quality.evaluator",
                  "importlib.metadata")  # entry points: read only for a kind that is not built in


def modules_of(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[set[str], str]:
    """(sys.modules when the command ended, its output); the command must exit 0."""
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd or ROOT,
                          stdin=subprocess.DEVNULL)
    lines = done.stderr.splitlines()
    listed = [line for line in lines if line.startswith("MODULES ")]
    assert done.returncode == 0 and listed, done.stdout + done.stderr
    return set(json.loads(listed[-1].removeprefix("MODULES "))), done.stdout


def present(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in modules]


def test_check_of_the_http_journeys_imports_nothing_they_do_not_need(tmp_path: Path) -> None:
    with DemoProcess() as demo:
        modules, out = modules_of("check", SAMPLE, *(a for j in HTTP_ONLY for a in ("--journey", j)),
                                  env={"SHOP_URL": demo.url}, cwd=tmp_path)
    assert "6 passed, 0 failed" in out
    assert {"aiohttp", "probes.http.probe", "probes.net.tls"} <= modules  # it did run HTTP and tls steps
    assert present(modules, NEVER_FOR_HTTP) == []


def test_a_file_without_jsonpath_does_not_import_jsonpath_ng(tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text(
        "version: 1\nagent: {state_dir: state}\nvariables: {base: '${SHOP_URL}'}\njourneys:\n"
        "  - name: uptime\n    steps:\n      - name: health\n        http: {url: '{{ base }}/health'}\n"
        "        expect: {status: 200, body_contains: ok, headers: {content-type: {exists: true}}}\n")
    with DemoProcess() as demo:
        modules, out = modules_of("check", "journeys.yaml", env={"SHOP_URL": demo.url}, cwd=tmp_path)
    assert "1 passed, 0 failed" in out
    assert present(modules, ("jsonpath_ng", *NEVER_FOR_HTTP)) == []


def test_version_imports_no_network_stack_and_validate_no_runner() -> None:
    version, out = modules_of("--version")
    assert out.startswith("qos-agent ")
    assert present(version, ("asyncio", "ssl", "aiohttp", "yarl", "yaml", "pydantic", "probes",
                             "qos_agent.config.loader")) == []
    valid, out = modules_of("validate", SAMPLE)
    assert "valid (8 journeys" in out
    assert present(valid, ("pydantic", "playwright", "qos_agent.runloop.runner", *NEVER_FOR_HTTP)) == []


def test_validate_imports_only_the_kinds_the_file_uses(tmp_path: Path) -> None:
    """validate reads each kind's light class: no aiohttp, Playwright, cryptography or dnspython for
    an HTTP-only file (issue 22: aiohttp 159 ms and cryptography 39 ms were imported for every file)."""
    (tmp_path / "journeys.yaml").write_text(
        "version: 1\njourneys:\n  - name: api\n    steps:\n      - name: login\n"
        "        http: {url: 'https://shop.example/login', headers: {Authorization: 'Bearer abcdef'}}\n"
        "        expect: {status: 200, cert_days_left: 14}\n        extract: {token: {json: $.token}}\n")
    modules, out = modules_of("validate", "journeys.yaml", cwd=tmp_path)
    assert "valid (1 journey" in out
    assert present(modules, ("aiohttp", "playwright", "cryptography", "dns", "grpc", "influxdb_client",
                             "probes.http.probe", "probes.common.netopts", "probes.common.tls_facts")) == []
    assert "probes.http.config" in modules  # the kind it uses, and only its light part
    assert present(modules, ("probes.browser.config", "probes.net.tcp.config", "probes.websocket.config")) == []


EVERY_SINK = """\
version: 1
exporters:
  - {type: influxdb, url: "http://127.0.0.1:8086", database: qos, password: x}
  - {type: influxdb, url: "http://127.0.0.1:8086", api: v2, org: o, bucket: b, token: t}
  - {type: prometheus_remote_write, url: "http://127.0.0.1:9090/api/v1/write", bearer_token: t}
  - {type: alertmanager, urls: ["http://127.0.0.1:9093", "http://127.0.0.1:9094"], auth: {username: u, password: p}}
  - {type: webhook, url: "http://127.0.0.1:9/hook", format: slack}
  - {type: webhook, format: pagerduty, routing_key: k}
  - {type: sqlite}
  - {type: jsonl}
  - {type: junit}
journeys:
  - name: j
    steps:
      - name: s
        tcp: {host: 127.0.0.1, port: 1}
"""
# What only sending needs: a sink's run-time side and its clients (imported by `SinkType.create`).
SINK_RUN_TIME = ("aiohttp", "influxdb_client", "cramjam", "google.protobuf", "prometheus_client",
                 "exporters.influxdb.sink", "exporters.influxdb.send", "exporters.influxdb.lineprotocol",
                 "exporters.prometheus.remote_write", "exporters.prometheus.proto", "exporters.alerts.alertmanager",
                 "exporters.alerts.webhook", "exporters.alerts.event", "exporters.files.sqlite",
                 "exporters.files.jsonl", "exporters.files.junit", "qos_agent.sinks.http", "qos_agent.sinks.series",
                 "qos_agent.delivery.store", "qos_agent.delivery.durable")
SINK_SIDE = """
import json, sys
from pathlib import Path
from qos_agent.config.schema import exporter_schema
from qos_agent.language.nodes import Problems
from qos_agent.language.yamlload import load_nodes
from qos_agent.plugins import registry
from qos_agent.plugins.context import LoadContext
problems = Problems()
root = load_nodes(Path(sys.argv[1]).read_text(), "j.yaml", {}, problems).root
for item in root.get("exporters").value:
    cls = registry.exporter_class(item.get("type").value)
    spec = cls.from_config(item, problems, LoadContext(Path("."), Path(".")))
    assert spec is not None and cls.split(spec) and exporter_schema(cls.type)["properties"], cls.type
assert not problems, [str(p) for p in problems.sorted()]
print(json.dumps(sorted(sys.modules)))
"""


def test_the_sinks_side_of_validate_and_schema_imports_no_sink_run_time(tmp_path: Path) -> None:
    """Every sink type parses, splits and describes itself without its client (aiohttp, influxdb-client...)."""
    (tmp_path / "j.yaml").write_text(EVERY_SINK)
    done = subprocess.run([sys.executable, "-c", SINK_SIDE, str(tmp_path / "j.yaml")], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert present(set(json.loads(done.stdout)), SINK_RUN_TIME) == []


def test_validate_of_a_file_with_every_sink_imports_no_sink_client(tmp_path: Path) -> None:
    (tmp_path / "j.yaml").write_text(EVERY_SINK)
    modules, out = modules_of("validate", "j.yaml", cwd=tmp_path)
    assert "valid (1 journeys, 1 steps, 10 exporters)" in out
    assert present(modules, SINK_RUN_TIME) == []  # nor does the step kinds' side (aiohttp included)
