"""A real small filesystem for disk-full and read-only tests: a tmpfs mounted on a test's directory.

Mounting needs root (CAP_SYS_ADMIN). Where it is impossible the test is skipped with the reason,
except under CI=true, where it fails: CI must run these. Always unmounted (lazily) in a finally.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.components import missing


def _mount(*argv: str) -> None:
    r = subprocess.run(["mount", *argv], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        missing(f"a mountable tmpfs (mount {' '.join(argv)}: {r.stderr.strip() or r.returncode})",
                "run the suite as root, where mount works")


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m", read_only: bool = False) -> Iterator[Path]:
    """A fresh tmpfs of `size` on `path` (created), remounted read-only when asked."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        if read_only:
            _mount("-o", "remount,ro", str(path))
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def fill(path: Path, chunk: int = 64 * 1024) -> int:
    """Write `path` until the filesystem is full; the bytes written (delete the file to free them)."""
    written = 0
    block = b"\0" * chunk
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if chunk == 1:
                    return written
                block = block[: max(1, len(block) // 4)]
                chunk = len(block)
