"""The JSON Schema of journeys.yaml: committed and current, the sample and a file using every key
validate (and the loader accepts that file too, so the schema never flags what the agent takes),
and the structural mistakes of the bad-file corpus fail under it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from qos_agent.config.loader import load_config
from qos_agent.config.schema import build_schema, schema_text, untyped_keys
from qos_agent.language.nodes import Problems
from qos_agent.language.yamlload import load_nodes
from qos_agent.plugins import registry
from qos_agent.plugins.context import LoadContext
from tests.support.cli import qos

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "journeys.schema.json"
CORPUS = ROOT / "tests" / "corpus" / "bad"

# Mistakes a schema cannot see, and why. Each must still pass the schema (so this list stays true);
# `qos-agent validate` catches all of them.
SEMANTIC = {
    "04-yaml-syntax.yaml": "not YAML at all: the editor's YAML parser reports it, there is nothing to validate",
    "09-duplicate-journey.yaml": "unique names across list items: JSON Schema has no 'unique by property'",
    "10-duplicate-step.yaml": "unique step names within a journey: same",
    "13-duplicate-key.yaml": "a duplicate key disappears while parsing YAML, before any schema sees the data",
    "16-missing-env.yaml": "depends on the environment at load time",
    "17-unknown-variable.yaml": "{{ name }} scoping (variables, earlier extracts) is data flow, not structure",
    "18-variable-from-later-step.yaml": "step order of extracts is data flow, not structure",
    "22-bad-shard.yaml": "INDEX <= COUNT compares two numbers inside one string",
    "26-extract-bad-jsonpath.yaml": "JSONPath syntax needs a JSONPath parser",
    "27-extract-bad-regex.yaml": "regex syntax: the schema's `format: regex` is ECMA-262 and optional to enforce",
    "38-unknown-global-var-in-journey-var.yaml": "{{ name }} scoping again",
    "alerting-03-resend-too-short.yaml": "a floor on a duration compares a number inside a string",
    "alerting-06-pagerduty-without-routing-key.yaml": "a key required by another key's value (format: pagerduty)",
    "62-tcp-bad-regex.yaml": "regex syntax again",
    "75-http-client-cert-missing.yaml": "whether a file exists depends on the machine",
    "70-uptime-unknown.yaml": "`uptime: NAME` refers to another list item by name",
    "71-uptime-on-uptime.yaml": "depends on the same journey's `kind`: a cross-key rule",
}

# Every key of the language at least once (the schema and the loader must both accept it).
EVERYTHING = """\
version: 1
agent:
  region: ${QOS_REGION:-eu-west}
  name: agent-1
  interval: 30s
  concurrency: 20
  browser_concurrency: 2
  state_dir: state
  listen: ${QOS_LISTEN:-127.0.0.1:9469}
  shard: 1/2
defaults:
  timeout: 5s
  retries: 1
  headers: {User-Agent: qos-agent}
  journey_timeout: 1m
  disruption: {open_after: 2, close_after: 3, window: 30m, min_failures: 3, min_runs: 10}
variables:
  base: ${SHOP_URL:-http://127.0.0.1:8080}
  n: 3
exporters:
  - type: sqlite
    path: results.db
    retention: 720h
  - {type: jsonl, path: points.jsonl, max_mb: 10, keep: 3}
  - {type: junit, path: junit.xml, max_cases: 100}
  - type: influxdb
    name: influx-main
    url: http://127.0.0.1:8086
    api: v1
    database: qos
    retention_policy: autogen
    username: qos
    password: ${INFLUX_PASSWORD:-pw}
    create_database: true
    gzip: true
    timeout: 10s
    batch_size: 5000
    flush_interval: 1s
    max_spool_mb: 64
    verify_tls: false
  - {type: influxdb, url: "http://127.0.0.1:8087", api: v2, org: qos, bucket: qos, token: "${INFLUX_TOKEN:-t}"}
  - type: alertmanager
    name: am
    urls: [http://127.0.0.1:9093, http://127.0.0.1:9094]
    resend: 1m
    labels: {team: payments}
    auth: {bearer: "${AM_TOKEN:-t}"}
    timeout: 10s
  - {type: alertmanager, url: "http://127.0.0.1:9095", auth: {username: qos, password: "${AM_PASSWORD:-p}"}}
  - type: webhook
    name: hook
    url: http://127.0.0.1:9000/hook
    format: slack
    headers: {X-Team: payments}
    timeout: 5s
  - {type: webhook, format: pagerduty, routing_key: "${PD_ROUTING_KEY:-k}"}
journeys:
  - name: checkout
    description: Sign in and pay
    owner: team-payments
    customer_reason: pay for an order
    weight: 0.4
    kind: journey
    interval: 15s
    regions: [eu-west, us-east]
    tags: {stage: purchase}
    slo: {success: 99.5%, latency: 2s}
    variables: {cart_id: demo-cart}
    retries: 0
    timeout: 40s
    headers: {X-Test: "1"}
    disruption: {open_after: 3}
    alert: {severity: page, runbook: "https://wiki.example/checkout"}
    steps:
      - name: login
        timeout: 5s
        always_run: false
        degraded_latency: 800ms
        http:
          method: post
          url: "{{ base }}/api/login"
          headers: {Accept: application/json}
          params: {debug: "0"}
          json: {user: demo, password: "${SHOP_PASSWORD:-demo}"}
          verify_tls: true
          max_redirects: 5
          follow_redirects: true
          max_body: 10MiB
        expect:
          status: [200, 201]
          latency: 800ms
          json: {"$.token": {exists: true}, "$.count": {gt: 0}, "$.name": "bob"}
          body_contains: token
          headers: {content-type: {contains: json}, x-trace: t-42}
        extract:
          token: {json: "$.token"}
          session: {cookie: session}
          trace: {header: X-Trace}
          first: {regex: "id=(\\\\d+)"}
      - name: form
        http: {method: POST, url: "{{ base }}/api/form", form: {a: "1"}}
      - name: raw
        http: {method: PUT, url: "{{ base }}/api/raw", body: "text {{ token }}"}
        expect: {status: 200}
      - name: pay
        always_run: true
        browser:
          - goto: "{{ base }}/checkout"
          - goto: {url: "{{ base }}/checkout", wait_until: networkidle, timeout: 5s}
          - fill: {selector: "#card", value: "4242 4242 4242 4242"}
          - select: {selector: "#plan", value: pro}
          - press: {selector: "#card", key: Enter}
          - click: "text=Pay"
          - wait_for: {selector: ".status", state: visible}
          - expect_text: {selector: ".status", text: Paid}
          - expect_url: {regex: "/done$"}
          - screenshot: {name: paid, full_page: true}
          - extract: {selector: "#order", name: order_id}
      - name: after
        browser:
          actions: [{goto: "{{ base }}/orders/{{ order_id }}"}]
          fail_on_http_errors: true
      - name: edge
        http:
          url: "https://shop.example/"
          proxy: http://127.0.0.1:3128
          client_cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
          client_key: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"
          ca_file: ${CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
          ip_version: 4
          resolve: {shop.example: 127.0.0.1}
        expect: {cert_days_left: 14}
      - name: cert
        tls: {host: shop.example, port: 443, server_name: shop.example, verify: true, ip_version: 6}
        expect: {cert_days_left: 14, tls_version_min: "1.2", hostname_valid: true, chain_valid: true, latency: 1s}
      - name: redis
        tcp: {host: 127.0.0.1, port: 6379, tls: false, server_name: x, verify_tls: true, send: "PING\r\n",
              expect_bytes: "+PONG", read_timeout: 2s, max_bytes: 1024}
        expect: {latency: 1s}
      - name: smtp
        tcp: {host: "mail.example:465", tls: true, expect_regex: "^220 "}
        expect: {cert_days_left: 7}
      - name: resolve
        dns: {name: shop.example, type: MX, server: "127.0.0.1:5353", transport: tcp}
        expect: {rcode: NOERROR, answers: {contains: [mail.shop.example.], matches: "^10 "}, min_answers: 1,
                 latency: 200ms}
      - name: live
        websocket:
          url: "wss://shop.example/ws"
          headers: {Authorization: "Bearer {{ token }}"}
          send: ['{"subscribe": "orders"}']
          expect_message: {json: {"$.type": {equals: ack}}, contains: ack}
          verify_tls: true
          max_messages: 10
        expect: {cert_days_left: 14, latency: 2s}
      - name: api-health
        grpc: {target: "api.example:443", service: shop.Orders, tls: true, server_name: api.example}
        expect: {status: SERVING, latency: 1s}
  - name: uptime
    kind: uptime
    steps:
      - name: health
        http: {url: "{{ base }}/health"}
        expect: {status: 200}
"""


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = build_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def test_the_committed_schema_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == schema_text(), "regenerate: qos-agent schema > docs/journeys.schema.json"
    r = qos("schema")
    assert r.returncode == 0 and r.stdout == schema_text(), r.stderr


def test_every_core_key_has_a_type() -> None:
    assert untyped_keys() == []


def test_the_sample_names_the_schema_and_validates(validator: jsonschema.Draft202012Validator) -> None:
    text = (ROOT / "journeys.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./docs/journeys.schema.json"
    assert errors(validator, yaml.safe_load(text)) == []


def test_a_file_with_every_key_passes_the_schema_and_the_loader(
        validator: jsonschema.Draft202012Validator, tmp_path: Path) -> None:
    assert errors(validator, yaml.safe_load(EVERYTHING)) == []
    path = tmp_path / "journeys.yaml"
    path.write_text(EVERYTHING)
    config = load_config(path, env={})
    assert len(config.journeys) == 2 and len(config.exporters) == 10  # the HA pair is two sinks


def test_deployment_examples_validate(validator: jsonschema.Draft202012Validator) -> None:
    for path in (ROOT / "deploy" / "journeys.yaml", ROOT / "docs" / "examples" / "mixed-journey.yaml"):
        assert errors(validator, yaml.safe_load(path.read_text())) == [], path


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_structural_mistakes_fail_under_the_schema(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    if path.name == "04-yaml-syntax.yaml":
        with pytest.raises(yaml.YAMLError):
            yaml.safe_load(path.read_text())
        return
    found = errors(validator, yaml.safe_load(path.read_text()))
    if path.name in SEMANTIC:
        assert found == [], f"{path.name} is listed as semantic but the schema catches it: drop it from SEMANTIC"
    else:
        assert found, f"{path.name} passes the schema: a structural mistake it should catch"


def test_the_semantic_list_names_real_files() -> None:
    assert set(SEMANTIC) <= {p.name for p in _corpus()}


def _unknown_keys(text: str, parse: Any) -> list[str]:
    problems = Problems()
    node = load_nodes(text, "x.yaml", {}, problems).root
    assert node is not None
    parse(node, problems)
    return [str(p) for p in problems.items if "unknown key" in p.what]


@pytest.mark.parametrize("kind", registry.exporter_types())
def test_exporter_keys_in_the_schema_are_keys_the_exporter_reads(kind: str, tmp_path: Path) -> None:
    variant = next(v for v in build_schema()["$defs"]["exporter"]["oneOf"]
                   if v["properties"]["type"] == {"const": kind})
    keys = sorted(variant["properties"])
    text = "\n".join(f"{k}: {json.dumps('x' if k != 'type' else kind)}" for k in keys)
    load = LoadContext(config_dir=tmp_path, state_dir=tmp_path)
    cls = registry.exporter_class(kind)
    assert _unknown_keys(text, lambda node, problems: cls.from_config(node, problems, load)) == []


@pytest.mark.parametrize("kind", registry.probe_kinds())
def test_step_keys_in_the_schema_are_keys_the_loader_reads(kind: str, tmp_path: Path) -> None:
    variant = next(v for v in build_schema()["$defs"]["step"]["oneOf"] if kind in v["required"])
    part = variant["properties"][kind]
    inner = sorted(part.get("properties", {}))  # http: its own keys; browser: a list of actions
    kind_value = "{" + ", ".join(f"{k}: x" for k in inner) + "}" if inner else "[{goto: x}]"
    step = {k: "x" for k in variant["properties"] if k not in ("extract", kind)}
    body = "\n".join(f"      {k}: {v}" for k, v in step.items())
    text = f"version: 1\njourneys:\n  - name: j\n    steps:\n    - name: s\n      {kind}: {kind_value}\n{body}\n"
    path = tmp_path / "journeys.yaml"
    path.write_text(text.replace("      name: x\n", ""))
    try:
        load_config(path, env={})
        problems: list[str] = []
    except Exception as e:
        problems = [line for line in str(e).splitlines() if "unknown key" in line]
    assert problems == []
