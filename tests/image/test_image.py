"""The built image, run with buildah (`make image`, then `make image-test`; .ci/run does both after the suite).

Not in the default `make test` run (tests/conftest.py leaves tests/image/ out): it needs the image. Under
CI=true a missing image or buildah fails these tests, never skips them. Each test runs the image the way
tests/support/image.py describes: its ENTRYPOINT as PID 1 of its own PID namespace, as its USER with no
capabilities, on the host's network (the demo service and InfluxDB on 127.0.0.1 are reached from inside).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import influx as influx_support
from tests.support.components import needs
from tests.support.demo import DemoProcess
from tests.support.dockerfile import exec_form, final_stage
from tests.support.health import get
from tests.support.image import BUILDAH, IMAGE, Container, changes, descendants, env_of, image_present, snapshot
from tests.support.influx import InfluxServer, free_port, needs_influxd
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
influxd = influx_support.influxd

pytestmark = [needs(BUILDAH is not None, "buildah (make image installs it)"),
              needs(BUILDAH is not None and image_present(), f"the image {IMAGE} (make image builds it)")]

# What a running agent may write: its state directory (the image's VOLUME, a directory of buildah's
# outside the root filesystem, as Docker's volume would be), /tmp and /dev/shm (Chromium's profile and
# shared memory; /dev is the runtime's). Any other change in the container's root filesystem is a write
# the image must not make: a read-only root filesystem would refuse it.
WRITABLE = ["tmp"]


@pytest.fixture(scope="module")
def box() -> Iterator[Container]:
    with Container() as container:
        container.run(["--version"])  # buildah's own first-run files are in place before any snapshot
        yield container


def written(box: Container, before: dict[str, Any]) -> list[str]:
    """What changed in the container's root filesystem outside WRITABLE since `before`."""
    # `buildah run` itself makes and removes /run/.containerenv at each run: /run's mtime is buildah's.
    return [c for c in changes(before, snapshot(box.rootfs, skip=WRITABLE)) if c != "~ /run"]


def kubernetes_agents() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()) if d]
    return [d["spec"]["template"] for d in docs if d["kind"] == "StatefulSet"]


def grace_period_s() -> int:
    """The shortest stop grace period the deployment examples give the agent."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["agent"]
    periods = [int(str(compose["stop_grace_period"]).rstrip("s"))]
    periods += [t["spec"]["terminationGracePeriodSeconds"] for t in kubernetes_agents()]
    return min(periods)


def test_the_image_config_is_the_dockerfiles_and_what_compose_and_kubernetes_rely_on(box: Container) -> None:
    config, stage = box.config, final_stage()
    assert config["Entrypoint"] == exec_form(stage, "ENTRYPOINT") and config["Cmd"] == exec_form(stage, "CMD")
    assert config["User"] == "10001:10001" and box.user() == (10001, 10001, "/var/lib/qos-agent")
    # Built with --format docker: the HEALTHCHECK survives (OCI images drop it).
    assert config["Healthcheck"]["Test"] == ["CMD", *exec_form(stage, "HEALTHCHECK")]
    env = env_of(config)
    state, port = env["QOS_STATE_DIR"], int(env["QOS_LISTEN"].rsplit(":", 1)[1])
    assert set(config["Volumes"]) == {state} and set(config["ExposedPorts"]) == {f"{port}/tcp"}
    assert config["WorkingDir"] == state and (box.rootfs / state.lstrip("/")).stat().st_uid == 10001
    chromium = box.rootfs / env["QOS_CHROMIUM"].lstrip("/")
    assert chromium.exists() and os.access(chromium.resolve(), os.X_OK)
    default_file = config["Cmd"][-1]
    assert (box.rootfs / default_file.lstrip("/")).read_text() == (DEPLOY / "journeys.yaml").read_text()

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    targets = {v.split(":")[1] for v in compose["agent"]["volumes"]}
    assert targets == {default_file, state}
    assert [p.rsplit(":", 1)[1] for p in compose["agent"]["ports"]] == [str(port)]
    assert compose["agent"].get("user") in (None, config["User"])
    assert compose["agent"]["read_only"] is True and compose["agent"]["tmpfs"] == ["/tmp"]  # what `written` checks
    demo = box.run([*compose["demo"]["command"][:1], "--help"])  # the demo service the compose file runs
    assert demo.returncode == 0 and "--host" in demo.stdout, demo.stdout + demo.stderr

    for template in kubernetes_agents():
        pod = template["spec"]
        (container,) = pod["containers"]
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (10001, 10001)
        assert [p["containerPort"] for p in container["ports"]] == [port]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["state"] == state and mounts["shm"] == "/dev/shm" and mounts["tmp"] == "/tmp"
        assert Path(container["args"][-1]).parent == Path(mounts["journeys"]) == Path(default_file).parent
        assert container["securityContext"]["readOnlyRootFilesystem"] is True  # what `written` checks


def test_the_agent_is_the_image_user_and_this_checkouts_version(box: Container) -> None:
    assert box.plain_run(["id", "-u"]).strip() == "10001"  # buildah applies the image's USER itself
    r = box.run(["--version"])
    assert r.returncode == 0 and r.stdout.split() == ["qos-agent", version("qos-agent")], r.stdout + r.stderr
    assert "tini" not in r.stderr  # tini warns when it is not PID 1 (nor a subreaper)


def test_the_image_user_can_write_its_state_tmp_and_shm_and_nothing_of_the_image(box: Container) -> None:
    probe = ("import os, sys\n"
             "for d in sys.argv[1:]:\n"
             "    try:\n"
             "        open(os.path.join(d, 'qos-probe'), 'w').close(); os.remove(os.path.join(d, 'qos-probe'))\n"
             "        print(d, 'writable')\n"
             "    except OSError as e:\n"
             "        print(d, type(e).__name__)\n")
    places = ["/var/lib/qos-agent", "/tmp", "/dev/shm", "/", "/etc/qos-agent", "/opt/qos-agent/bin", "/usr/bin"]
    r = box.run(["python", "-c", probe, *places], entrypoint=False)
    assert r.returncode == 0, r.stderr
    seen = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert seen == {"/var/lib/qos-agent": "writable", "/tmp": "writable", "/dev/shm": "writable",
                    "/": "PermissionError", "/etc/qos-agent": "PermissionError",
                    "/opt/qos-agent/bin": "PermissionError", "/usr/bin": "PermissionError"}
    # The other tests' "nothing else written" is no blind spot: a file made and removed in /var/tmp (writable
    # by anyone in the image, but not a place the agent may write) is seen.
    before = snapshot(box.rootfs, skip=WRITABLE)
    assert box.run(["python", "-c", probe, "/var/tmp"], entrypoint=False).stdout == "/var/tmp writable\n"
    assert written(box, before) == ["~ /var/tmp"]


def test_check_passes_every_sample_journey_the_browser_one_with_the_images_chromium(box: Container,
                                                                                   tmp_path: Path) -> None:
    before = snapshot(box.rootfs, skip=WRITABLE)
    with DemoProcess() as demo:  # `qos-agent demo-service` on the host's loopback
        # As docs/deploy.md: docker run --rm -v "$PWD:/etc/qos-agent:ro" qos-agent check ...: the folder, as the
        # sample's script step reads steps/checkout.py beside journeys.yaml (a mount point made inside the image's
        # /etc/qos-agent would be a write to the image).
        folder = tmp_path / "conf"
        folder.mkdir()
        shutil.copy(ROOT / "journeys.yaml", folder / "journeys.yaml")
        shutil.copytree(ROOT / "steps", folder / "steps", ignore=shutil.ignore_patterns("__pycache__"))
        r = box.run(["check", "/etc/qos-agent/journeys.yaml", "--format", "json"], timeout=180,
                    env={"SHOP_URL": demo.url}, volumes=[f"{folder}:/etc/qos-agent:ro"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout)
    outcomes = {j["journey"]: j["outcome"] for j in report["journeys"]}
    sample = yaml.safe_load((ROOT / "journeys.yaml").read_text())["journeys"]
    assert outcomes == {j["name"]: "passed" for j in sample}
    (browser,) = [j for j in report["journeys"] if j["journey"] == "browser_checkout"]
    assert [s["name"] for s in browser["steps"]] == ["login", "dashboard", "pay"]
    assert written(box, before) == []


@needs_influxd
def test_run_under_tini_answers_health_reloads_on_hup_and_stops_on_term_writing_only_its_state(
        box: Container, tmp_path: Path, influxd: InfluxServer) -> None:
    config = box.config
    state = box.volume_dirs()[env_of(config)["QOS_STATE_DIR"]]  # the state volume, emptied: a fresh one
    for old in state.iterdir():
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    journeys = tmp_path / "journeys.yaml"  # the compose file's mount: deploy/journeys.yaml
    shutil.copy(DEPLOY / "journeys.yaml", journeys)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    before = snapshot(box.rootfs, skip=WRITABLE)
    with DemoProcess() as demo, open(tmp_path / "agent.log", "wb") as log:
        env = {"QOS_REGION": "eu-west", "QOS_INTERVAL": "1s", "SHOP_URL": demo.url, "INFLUX_URL": influxd.url,
               # The host's network: loopback only, never the image's 0.0.0.0.
               "QOS_LISTEN": f"127.0.0.1:{port}", "QOS_HEALTH_URL": f"{url}/livez"}
        proc = box.start(config["Cmd"], log=log, env=env, volumes=[f"{journeys}:/etc/qos-agent/journeys.yaml:ro"])
        try:
            def agent_log() -> str:
                return (tmp_path / "agent.log").read_text(errors="replace")

            def both_passed() -> dict[str, Any] | None:
                if proc.poll() is not None:
                    raise RuntimeError(f"the container exited {proc.returncode}:\n{agent_log()}")
                try:
                    status, body = get(f"{url}/healthz", timeout=2)
                except OSError:
                    return None
                health: dict[str, Any] = json.loads(body)
                runs = health.get("last_run", {})
                passed = all(runs.get(j, {}).get("outcome") == "passed" for j in ("checkout", "uptime"))
                return health if status == 200 and passed else None

            health = wait_for(both_passed, limit_s=60, what="checkout and uptime pass in the image")

            # tini is PID 1 of the container's PID namespace, the agent its child (PID 2); both uid 10001.
            tree = descendants(proc.pid)
            (tini,) = [p for p in tree if p.argv[0] == config["Entrypoint"][0]]
            (agent,) = [p for p in tree if p.ppid == tini.pid]
            assert (tini.ns_pid, tini.uid) == (1, 10001)
            assert (agent.ns_pid, agent.uid, agent.argv[-2:]) == (2, 10001, config["Cmd"])
            assert health["pid"] == 2 and health["config_path"] == "/etc/qos-agent/journeys.yaml"

            # Liveness, readiness and the JSON for people (the probe paths below follow deploy/kubernetes.yaml).
            assert get(f"{url}/livez")[0] == 200 and get(f"{url}/readyz")[0] == 200 and get(f"{url}/healthz")[0] == 200
            probes = {c[k]["httpGet"]["path"] for t in kubernetes_agents() for c in t["spec"]["containers"]
                      for k in ("livenessProbe", "readinessProbe", "startupProbe") if k in c}
            assert probes and all(get(f"{url}{p}")[0] == 200 for p in probes), probes
            status, metrics = get(f"{url}/metrics")
            assert status == 200 and "qos_agent_info{" in metrics
            # The image's own HEALTHCHECK command, run inside the container as Docker would.
            check = box.run(config["Healthcheck"]["Test"][1:], entrypoint=False, env=env, timeout=30)
            assert check.returncode == 0, check.stderr

            def stored() -> bool:
                try:
                    return influxd.count("journey", "qos") >= 2
                except RuntimeError:  # the agent has not created the database yet
                    return False

            wait_for(stored, limit_s=30, what="the image's points in InfluxDB")

            # SIGHUP to PID 1 (`docker kill -s HUP`): tini forwards it, the agent reloads the edited file.
            with journeys.open("a") as f:  # in place: a bind-mounted file keeps its inode
                f.write("\n  - name: reloaded\n    steps:\n      - name: health\n"
                        "        http: {url: \"{{ base }}/health\"}\n")
            os.kill(tini.pid, signal.SIGHUP)
            wait_for(lambda: "reloaded" in json.loads(get(f"{url}/healthz")[1])["journeys_scheduled"],
                     limit_s=30, what="the added journey scheduled after SIGHUP")
            assert "reloaded /etc/qos-agent/journeys.yaml: 3 journeys scheduled" in agent_log()

            # SIGTERM to PID 1 (`docker stop`): a clean exit well within the deployments' grace period.
            start = time.monotonic()
            os.kill(tini.pid, signal.SIGTERM)
            code = proc.wait(grace_period_s())
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    log_text = agent_log()
    assert code == 0, log_text[-3000:]
    assert took < grace_period_s() and "stopping: waiting up to" in log_text, (took, log_text[-3000:])
    assert "[WARN  tini" not in log_text
    results = state / "qos-results.db"
    assert results.exists() and results.stat().st_uid == 10001
    assert written(box, before) == []

