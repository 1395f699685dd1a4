"""A missing real component skips a test on a laptop and FAILS it under CI=true (never a silent skip)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = '''
from tests.support.components import needs

@needs(False, "an imaginary server")
def test_needs_it() -> None:
    pass

@needs(True, "a present server")
def test_has_it() -> None:
    pass
'''


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    test = ROOT / "tests" / f"test_zz_components_probe_{os.getpid()}_{ci}.py"
    test.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    try:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(test)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    finally:
        test.unlink()


def test_missing_component_fails_under_ci(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "1 passed, 1 error" in done.stdout  # fails in setup: an error, never a skip
    assert "an imaginary server is not installed, and CI=true" in done.stdout


def test_missing_component_skips_locally(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped" in done.stdout
    assert "an imaginary server is not installed" in done.stdout
