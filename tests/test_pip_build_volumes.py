"""scripts/pip_build_volumes.py: pip inside `make image` gets this machine's index settings, mounted for the
build only, the environment winning over the files as it does for pip itself."""

from __future__ import annotations

import configparser
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "pip_build_volumes.py"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pip_build_volumes", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_environment_overrides_every_section_as_for_pip() -> None:
    m = script()
    env = m.env_settings({"PIP_FIND_LINKS": "/c", "PIP_DEFAULT_TIMEOUT": "60", "PIP_CONFIG_FILE": "/x", "HOME": "/"})
    assert env == {"find-links": "/c", "default-timeout": "60"}
    files = {"global": {"find-links": "/a", "cert": "/ca.pem"}, "install": {"find-links": "/b", "user": "no"}}
    assert m.merged(files, env) == {"global": {"find-links": "/c", "cert": "/ca.pem", "default-timeout": "60"},
                                    "install": {"user": "no"}}


def test_local_paths_are_mounted_under_one_root_and_the_settings_point_there(tmp_path: Path) -> None:
    m = script()
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    (tmp_path / "pypi" / "files").mkdir()
    (tmp_path / "wheels").mkdir()
    (tmp_path / "ca.pem").write_text("")
    settings = {"global": {"extra-index-url": f"https://mirror.example/simple file://{tmp_path}/pypi/simple",
                           "find-links": f"{tmp_path}/wheels {tmp_path}/gone",
                           "cert": f"{tmp_path}/ca.pem", "timeout": "60"}}
    rewritten, mounts = m.mounted(settings)
    root = m.MOUNT_ROOT
    assert rewritten == {"global": {
        # A file:// index's files sit next to its simple/ directory: the whole repository is mounted.
        "extra-index-url": f"https://mirror.example/simple file://{root}{tmp_path}/pypi/simple",
        "find-links": f"{root}{tmp_path}/wheels {tmp_path}/gone",  # a missing path stays as pip would see it
        "cert": f"{root}{tmp_path}/ca.pem", "timeout": "60"}}
    assert mounts == [tmp_path / "ca.pem", tmp_path / "pypi", tmp_path / "wheels"]


def test_the_script_prints_build_options_and_writes_the_merged_file(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PIP_FIND_LINKS": str(wheels)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == [f"--volume={tmp_path}/pip.conf:/run/qos-build-pip/pip.conf:ro",
                         "--build-arg=PIP_CONFIG_FILE=/run/qos-build-pip/pip.conf"]
    assert f"--volume={wheels}:/run/qos-build-pip{wheels}:ro" in lines
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(tmp_path / "pip.conf")
    assert conf["global"]["find-links"] == f"/run/qos-build-pip{wheels}"
