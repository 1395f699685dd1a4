"""`run --watch`: reload when journeys.yaml changes, by polling (no inotify dependency).

Every second the file is stat'ed; only when its (mtime, size, inode) moved is it read and hashed,
and only a hash different from the last one seen triggers a reload. So touching the file does
nothing, an editor's save-by-rename is seen, and a broken save is tried once (the reload keeps the
old configuration and reports the failure) rather than every second until it is fixed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

POLL_S = 1.0
SETTLE_S = 0.1  # an editor may write in several chunks: wait until the file stops moving

Stamp = tuple[int, int, int]


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes ('' when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:  # in blocks: a huge file costs time, not memory
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def _stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def watch_file(path: str | Path, known_hash: Callable[[], str], on_change: Callable[[], None],
                     poll_s: float = POLL_S) -> None:
    """Call `on_change` whenever the file's content differs from the last content seen; runs until cancelled.

    `known_hash` gives the hash of the configuration running now (a SIGHUP may have reloaded it
    meanwhile), so a change that was already applied is not applied twice.
    """
    path = Path(path)
    stamp = _stamp(path)
    seen = known_hash()
    while True:
        await asyncio.sleep(poll_s)
        now = _stamp(path)
        if now is None or now == stamp:
            continue
        await asyncio.sleep(SETTLE_S)
        settled = _stamp(path)
        if settled != now:
            continue  # still being written: look again at the next poll
        stamp = now
        digest = file_sha256(path)
        if not digest or digest in (seen, known_hash()):
            seen = digest or seen
            continue
        seen = digest
        log.info("%s changed: reloading", path)
        try:
            on_change()
        except Exception as e:  # a failed reload must not end the watch: a later fix is still seen
            log.error("reload after a change of %s failed: %s", path, type(e).__name__)
