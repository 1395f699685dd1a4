"""`check` exits 3 when the machine cannot run a journey; `report` needs no secrets; help reads like click."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.cli import qos

BROWSER = """\
version: 1
agent: {state_dir: state}
journeys:
  - name: page
    steps:
      - name: home
        browser: [{goto: "http://127.0.0.1:9/"}]
"""

HTTP = """\
version: 1
agent: {{state_dir: "{state}"}}
journeys:
  - name: api
    steps:
      - name: health
        http: {{url: "http://127.0.0.1:9/health"}}
"""


def test_missing_chromium_exits_3_and_names_the_real_knob(tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text(BROWSER)
    r = qos("check", "journeys.yaml", cwd=tmp_path, env={"QOS_CHROMIUM": str(tmp_path / "no-chromium")})
    assert r.returncode == 3, r.stderr
    assert f"chromium not found at {tmp_path / 'no-chromium'}" in r.stderr
    assert "QOS_CHROMIUM" in r.stderr and "executable_path" not in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_state_dir_exits_3(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "journeys.yaml").write_text(HTTP.format(state=tmp_path / "a-file" / "state"))
    r = qos("check", "journeys.yaml", "--export", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert f"state_dir {tmp_path / 'a-file' / 'state'} is not writable" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_missing_optional_module_exits_3_with_one_line() -> None:
    import typer

    from qos_agent.cli import _setup_error

    exit_ = _setup_error(ModuleNotFoundError("No module named 'grpc'", name="grpc"))
    assert isinstance(exit_, typer.Exit) and exit_.exit_code == 3


REPORT = """\
version: 1
agent: {state_dir: st}
variables: {password: "${SHOP_PASSWORD}", base: "${SHOP_URL}"}
exporters:
  - type: sqlite
    path: custom.db
journeys:
  - name: api
    steps:
      - name: login
        http: {url: "{{ base }}/x", json: {password: "{{ password }}"}}
"""


def test_report_without_db_needs_no_secret_env(tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text(REPORT)
    (tmp_path / "st").mkdir()
    with sqlite3.connect(tmp_path / "st" / "custom.db") as conn:
        conn.execute("CREATE TABLE points (measurement TEXT, tags TEXT, fields TEXT, time_ms INTEGER)")
    r = qos("report", cwd=tmp_path)  # neither SHOP_PASSWORD nor SHOP_URL is set
    assert "SHOP_PASSWORD" not in r.stderr + r.stdout and "SHOP_URL" not in r.stderr + r.stdout
    assert str(tmp_path / "st" / "custom.db") in r.stdout + r.stderr  # it read the store's path only


def test_report_says_when_a_variable_naming_the_store_is_missing(tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text(REPORT.replace("path: custom.db", "path: ${QOS_STORE_NAME}"))
    r = qos("report", cwd=tmp_path)
    assert r.returncode == 2
    assert "journeys.yaml:6:11: environment variable QOS_STORE_NAME is not set" in r.stderr


@pytest.mark.parametrize("command", ["validate", "check", "run", "report", "demo", "demo-service", "schema"])
def test_help_uses_click_metavars(command: str) -> None:
    r = qos(command, "--help")
    assert r.returncode == 0
    assert "<" not in r.stdout, r.stdout  # no <bool>, <list[str]>, <path>
    for line in r.stdout.splitlines():
        if "--export" in line or "--watch" in line or "--help" in line:
            assert not any(t in line for t in ("TEXT", "PATH", "BOOL", "BOOLEAN")), line  # flags: no type
    if command == "check":
        assert "--journey TEXT" in r.stdout and "--junit PATH" in r.stdout and "[FILE]" in r.stdout
