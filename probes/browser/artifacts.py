"""Files a browser step leaves: named and failure screenshots, traces, and their bounded retention.

Everything lives under `state_dir/artifacts/<journey>/<run_id>/`. After a run writes there, the
oldest run directories are removed until at most `QOS_ARTIFACTS_MAX_RUNS` (default 200) remain and
they take at most `QOS_ARTIFACTS_MAX_MB` (default 500) MB. File names come from step names and
`screenshot:` names, which are fixed in the file (never rendered), so they never hold a secret.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

MAX_RUNS = 200
MAX_MB = 500.0


def limits() -> tuple[int, float]:
    try:
        runs = int(os.environ.get("QOS_ARTIFACTS_MAX_RUNS", MAX_RUNS))
        mb = float(os.environ.get("QOS_ARTIFACTS_MAX_MB", MAX_MB))
    except ValueError:
        return MAX_RUNS, MAX_MB
    return max(1, runs), max(1.0, mb)


def free_path(directory: Path, name: str, suffix: str) -> Path:
    """`name.suffix` in directory, or `name-2.suffix`... when taken (a step failing twice)."""
    path = directory / f"{name}{suffix}"
    n = 2
    while path.exists():
        path = directory / f"{name}-{n}{suffix}"
        n += 1
    return path


def _size(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def prune(root: Path, keep: Path | None = None, max_runs: int | None = None, max_mb: float | None = None) -> int:
    """Remove the oldest run directories under root beyond the limits; returns how many went."""
    default_runs, default_mb = limits()
    max_runs = max_runs or default_runs
    max_bytes = int((max_mb or default_mb) * 1024 * 1024)
    runs: list[tuple[float, Path, int]] = []
    if not root.is_dir():
        return 0
    for journey in root.iterdir():
        if not journey.is_dir():
            continue
        for run in journey.iterdir():
            if run.is_dir():
                with contextlib.suppress(OSError):
                    runs.append((run.stat().st_mtime, run, _size(run)))
    runs.sort(key=lambda r: r[0])
    total = sum(r[2] for r in runs)
    removed = 0
    for _, run, size in runs:
        if len(runs) - removed <= max_runs and total <= max_bytes:
            break
        if keep is not None and run == keep:
            continue
        shutil.rmtree(run, ignore_errors=True)
        total -= size
        removed += 1
        with contextlib.suppress(OSError):
            run.parent.rmdir()  # only when empty: another run may be writing there
    return removed
