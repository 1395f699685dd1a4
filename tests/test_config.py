"""journeys.yaml loading: the bad-file corpus (each mistake located), and what a good file becomes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qos_agent.config.loader import load_config
from qos_agent.errors import ConfigError
from qos_agent.model import JourneyKind

CORPUS = sorted((Path(__file__).parent / "corpus" / "bad").glob("*.yaml"))
ROOT = Path(__file__).resolve().parent.parent


def expectations(path: Path) -> list[str]:
    return [line.split("# expect: ", 1)[1].rstrip("\n") for line in path.read_text().splitlines(True)
            if line.startswith("# expect: ")]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_bad_file_gives_located_error(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    messages = [str(p) for p in info.value.problems]
    for expected in expectations(path):
        if re.match(r"^\d+:\d+: ", expected):
            wanted = f"{path}:{expected}"
            assert any(m.startswith(wanted) for m in messages), f"{wanted!r} not in {messages}"
        else:
            assert any(expected in m for m in messages), f"{expected!r} not in {messages}"
    for m in messages:
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", m), m
        assert "Traceback" not in m


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journeys.yaml"
    path.write_text(text)
    return path


GOOD = """\
version: 1
agent:
  region: ${QOS_REGION:-local}
  interval: 30s
  concurrency: 5
  state_dir: state
defaults:
  timeout: 2s
  retries: 1
  headers: {User-Agent: qos-agent-test}
variables:
  base: ${SHOP_URL:-http://127.0.0.1:9}
journeys:
  - name: checkout
    interval: 250ms
    regions: [eu-west, us-east]
    tags: {stage: purchase}
    slo: {success: 99.5%, latency: 2s}
    variables: {cart: "{{ base }}/cart"}
    steps:
      - name: login
        http:
          method: POST
          url: "{{ base }}/api/login"
          json: {user: demo, password: "${SHOP_PASSWORD:-demo}"}
        extract:
          token: {json: "$.token"}
      - name: cart
        http: {url: "{{ cart }}/1", headers: {Authorization: "Bearer {{ token }}"}}
        timeout: 5s
        degraded_latency: 1s
      - name: logout
        always_run: true
        http: {url: "{{ base }}/logout?u={{ $uuid }}"}
  - name: uptime
    kind: uptime
    steps:
      - name: health
        http: {url: "{{ base }}/health"}
"""


def test_good_file_parses_into_frozen_model(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={"SHOP_PASSWORD": "s3cret-pass", "QOS_REGION": "eu-west"})
    assert config.agent.region == "eu-west"
    assert config.agent.state_dir == str(tmp_path / "state")
    checkout = config.journey("checkout")
    assert checkout is not None
    assert checkout.interval_s == 0.25
    assert checkout.regions == ("eu-west", "us-east")
    assert checkout.slo.success == pytest.approx(0.995) and checkout.slo.latency_s == 2.0
    assert dict(checkout.variables)["cart"] == "{{ base }}/cart"
    assert dict(checkout.headers) == {"User-Agent": "qos-agent-test"}
    assert checkout.retries == 1
    assert [s.name for s in checkout.steps] == ["login", "cart", "logout"]
    assert checkout.steps[0].timeout_s == 2.0 and checkout.steps[1].timeout_s == 5.0
    assert checkout.steps[1].degraded_latency_s == 1.0
    assert checkout.steps[2].always_run
    assert checkout.steps[0].extract[0].name == "token"
    assert checkout.timeout_s == pytest.approx(2 + 5 + 2 + 5)
    uptime = config.journey("uptime")
    assert uptime is not None and uptime.kind is JourneyKind.UPTIME and uptime.interval_s == 30.0
    # the password came from the environment: a secret; the region is identity, not a secret
    assert "s3cret-pass" in config.secrets
    assert "eu-west" not in config.secrets
    # no exporter configured: the embedded SQLite store
    assert [e.type for e in config.exporters] == ["sqlite"]
    with pytest.raises(AttributeError):
        config.agent.region = "x"  # type: ignore[misc]


def test_defaults_written_in_the_file_are_not_secrets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    assert config.secrets == frozenset()
    assert dict(config.journeys[0].variables)["base"] == "http://127.0.0.1:9"


def test_region_override_wins(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={}, region="ap-south")
    assert config.agent.region == "ap-south"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("interval: 250ms", "interval: soon").replace("concurrency: 5", "concurrency: none")
    text = text.replace('"Bearer {{ token }}"', '"Bearer {{ tokn }}"')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert len(info.value.problems) == 3
    lines = [p.loc.line for p in info.value.problems]
    assert lines == sorted(lines)


def test_sample_journeys_file_is_valid() -> None:
    config = load_config(ROOT / "journeys.yaml", env={})
    names = {j.name for j in config.journeys}
    assert {"onboarding", "billing", "support", "checkout", "uptime"} <= names
    assert any(j.kind is JourneyKind.UPTIME for j in config.journeys)
