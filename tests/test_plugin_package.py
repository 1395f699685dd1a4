"""A third-party step kind gets everything the core owns without a line changed in the core (issue 22).

tests/plugins/qos-echo is its own distribution: pip installs it into a directory of its own and the
agent finds its kinds through their entry points only. Then `validate` locates its mistakes,
`schema` describes its keys and what `extract:` may read from it, and `check` runs it against a real
TCP server that echoes what it is sent: the Authorization header it sent is masked in the echo, and
`extract:` works on what it yields (a located error on the kind that yields nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from socketserver import StreamRequestHandler, ThreadingTCPServer

import pytest

from tests.support.cli import ROOT, qos

PACKAGE = ROOT / "tests" / "plugins" / "qos-echo"
TOKEN = "plug-tok-4242"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The plug-in installed by pip into a directory of its own (its dist-info holds the entry points)."""
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(site), str(PACKAGE)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(site.glob("qos_echo-1.0.dist-info/entry_points.txt"))
    return str(site)


class Echo(StreamRequestHandler):
    def handle(self) -> None:
        said = self.request.recv(4096).decode()
        status = "ERR" if said.rstrip().endswith("fail") or "fail " in said else "OK"
        self.wfile.write(f"{status} got {said.splitlines()[-1].split()[0]} after {said!r}\n".encode())


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = ThreadingTCPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


JOURNEYS = """\
version: 1
agent: {{state_dir: state, listen: "off"}}
variables: {{tok: {token}}}
journeys:
  - name: plugged
    steps:
      - name: hello
        echo: {{host: 127.0.0.1, port: {port}, message: hello, headers: {{Authorization: "Bearer {{{{ tok }}}}"}}}}
        extract: {{word: {{regex: "got (\\\\w+)"}}}}
      - name: again
        echo: {{host: 127.0.0.1, port: {port}, message: "{{{{ word }}}} fail",
                headers: {{Authorization: "Bearer {{{{ tok }}}}"}}}}
"""

BAD = """\
version: 1
journeys:
  - name: plugged
    steps:
      - name: typo
        echo: {host: 127.0.0.1, prot: 7000}
      - name: quiet
        silent: {host: 127.0.0.1, port: 7000}
        extract: {x: {regex: "(.*)"}}
      - name: headerless
        echo: {host: 127.0.0.1, port: 7000}
        extract: {y: {header: Server}}
"""


def test_a_plugin_kind_is_validated_and_located(plugin_path: str, tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text(BAD)
    done = qos("validate", "journeys.yaml", env={"PYTHONPATH": plugin_path}, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    assert "journeys.yaml:6:33: unknown key 'prot' in echo" in out, out
    assert "journeys.yaml:9:18: silent steps yield nothing to extract from" in out, out
    assert "journeys.yaml:12:31: echo steps cannot extract with 'header' (they yield the reply)" in out, out


def test_a_plugin_kind_is_in_the_json_schema(plugin_path: str) -> None:
    done = qos("schema", env={"PYTHONPATH": plugin_path})
    assert done.returncode == 0, done.stderr
    variants = {v["title"]: v for v in json.loads(done.stdout)["$defs"]["step"]["oneOf"]}
    echo = variants["echo step"]["properties"]
    assert set(echo["echo"]["properties"]) == {"host", "port", "message", "headers"}
    assert echo["echo"]["additionalProperties"] is False
    assert set(echo["extract"]["additionalProperties"]["properties"]) == {"json", "regex", "secret"}
    assert variants["silent step"]["properties"]["extract"]["not"] == {}


def test_a_plugin_kind_is_masked_and_extracts(plugin_path: str, tmp_path: Path, echo_port: int) -> None:
    (tmp_path / "journeys.yaml").write_text(JOURNEYS.format(token=TOKEN, port=echo_port))
    done = qos("check", "journeys.yaml", "--format", "json", env={"PYTHONPATH": plugin_path}, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    steps = {s["name"]: s for j in json.loads(done.stdout)["journeys"] for s in j["steps"]}
    assert steps["hello"]["outcome"] == "passed"
    again = steps["again"]
    assert again["outcome"] == "failed" and again["error"] == "status"
    # `extract:` gave the next step "hello"; the Authorization value it sent came back, masked.
    assert again["error_message"].startswith("the server said ERR got hello after"), again
    assert "Authorization: ***" in again["error_message"]
    assert TOKEN not in done.stdout + done.stderr
