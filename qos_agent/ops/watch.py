"""`run --watch`: reload when journeys.yaml changes, by polling (no inotify dependency).

Every second the file is stat'ed; only when its (mtime, size, inode) moved is it read and hashed,
and only a hash different from the last one seen triggers a reload (the other files the configuration
is made of, a script step's, are watched the same way). So touching the file does
nothing, an editor's save-by-rename is seen, and a broken save is tried once (the reload keeps the
old configuration and reports the failure) rather than every second until it is fixed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
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


class _Others:
    """The other files the configuration is made of (a script step's), watched the same way: a
    content that differs from the last one seen is a change, whatever the configuration's hash."""

    def __init__(self, files: Callable[[], Iterable[str]]) -> None:
        self.files = files
        self.stamps = {f: _stamp(Path(f)) for f in files()}
        self.seen = {f: file_sha256(f) for f in self.stamps}

    def changed(self) -> str | None:
        """The first file whose content changed since the last look, else None."""
        now = {f: _stamp(Path(f)) for f in self.files()}
        moved = [f for f, stamp in now.items() if stamp != self.stamps.get(f)]
        self.stamps = now
        found = None
        for f in moved:
            digest = file_sha256(f)
            if f in self.seen and digest != self.seen[f] and found is None:  # (a file new to the list: just loaded)
                found = f
            self.seen[f] = digest
        return found


async def watch_file(path: str | Path, known_hash: Callable[[], str], on_change: Callable[[], None],
                     poll_s: float = POLL_S, others: Callable[[], Iterable[str]] = tuple) -> None:
    """Call `on_change` whenever the file's content differs from the last content seen; runs until cancelled.

    `known_hash` gives the hash of the configuration running now (a SIGHUP may have reloaded it
    meanwhile), so a change that was already applied is not applied twice. `others` gives the other
    files the running configuration is made of (`Config.files`: scripts): a change of one reloads too.
    """
    path = Path(path)
    stamp = _stamp(path)
    seen = known_hash()
    extra = _Others(others)
    while True:
        await asyncio.sleep(poll_s)
        if (changed := extra.changed()) is not None:
            log.info("%s changed: reloading %s", changed, path)
            _call(on_change, path)
            continue
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
        _call(on_change, path)


def _call(on_change: Callable[[], None], path: Path) -> None:
    try:
        on_change()
    except Exception as e:  # a failed reload must not end the watch: a later fix is still seen
        log.error("reload after a change of %s failed: %s", path, type(e).__name__)
