"""The run's Playwright trace, kept free of typed secrets.

Tracing starts when the run's context is made (DOM snapshots, no screencast, no sources) and is
saved only when a step fails (`trace.zip`); a passing run's trace is discarded.

What a saved trace may hold: every traced action with its parameters (selectors, URLs, typed text
that is not a secret), DOM snapshots before/after each action (including input values),
console messages, and the network log (URLs, request and response headers
including cookies, request bodies, response bodies). URLs are recorded as they are; cookie values,
Authorization headers and every secret are masked by the scrub below.

What it never holds: a value typed from a secret. When a `fill`, `select` or `press` is about to
send a value containing a secret (`ctx.redact.secrets`), the current trace chunk is discarded and
tracing stays off while the page may still hold the value: the action itself, its DOM (the input's
value) is never recorded. Tracing resumes with a new chunk as soon as
a new document has loaded (the input is gone). Playwright writes some network entries late (the
request that submitted the secret can land in the resumed chunk), so a saved trace is also scrubbed:
every file in the zip has each secret, in every spelling `secret_forms` knows (URL, form, latin-1,
JSON, repr, HTML), replaced by `***` before the path is reported. A trace covers the run since its
start or since the last resumption; a step that fails while tracing is off gets a screenshot
(secret inputs masked) and no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from playwright.async_api import BrowserContext, Error

from qos_agent.language.secret_forms import compile_secrets
from qos_agent.language.secrets import MASK


def scrub(path: Path, secrets: Iterable[str]) -> int:
    """Rewrite the zip with every secret masked in every spelling; returns how many files changed.

    Files are read as latin-1 (bytes 1:1), where a UTF-8 `é` reads `Ã©`: `secret_forms` knows
    that spelling too, so raw UTF-8, raw latin-1 and every escaped form are masked in one pass.
    """
    pattern = compile_secrets(secrets)
    if pattern is None:
        return 0
    changed = 0
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            clean = pattern.sub(MASK, data.decode("latin-1")).encode("latin-1")
            changed += clean != data
            dst.writestr(info, clean)
    os.replace(tmp, path)
    return changed


class TraceGuard:
    def __init__(self, context: BrowserContext, enabled: bool) -> None:
        self.context = context
        self.enabled = enabled
        self.recording = False
        self.secret_selectors: list[str] = []  # inputs of the current document holding a secret
        self._tainted = False
        self._resume: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.enabled:
            # No screencast: its frames cost ~+25 % per run (docs/benchmarks.md); DOM snapshots replay the
            # page in the trace viewer, and a failed step saves its own screenshot.
            await self.context.tracing.start(screenshots=False, snapshots=True, sources=False)
            self.recording = True

    def document_loaded(self) -> None:
        """A new document: typed secrets are gone with the old one, so tracing may resume."""
        if self._tainted and self._resume is None:
            self._resume = asyncio.get_running_loop().create_task(self._start_chunk())

    async def _start_chunk(self) -> None:
        self._tainted = False
        self.secret_selectors.clear()
        if self.enabled and not self.recording:
            with contextlib.suppress(Error):
                await self.context.tracing.start_chunk()
                self.recording = True

    async def _settle(self) -> None:
        task, self._resume = self._resume, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    async def before(self, secret_selector: str | None) -> None:
        """Called before each action; `secret_selector` set when the action types a secret."""
        await self._settle()
        if secret_selector is None:
            return
        self.secret_selectors.append(secret_selector)
        self._tainted = True
        if self.recording:
            self.recording = False
            await self.context.tracing.stop_chunk()  # discarded: it may already show the form

    async def save(self, path: Path, secrets: Iterable[str]) -> bool:
        """Write the chunk so far to `path`, scrubbed, and go on recording; False when none."""
        await self._settle()
        if not self.recording:
            return False
        self.recording = False
        try:
            await self.context.tracing.stop_chunk(path=path)
        except Error:
            return False
        if not self._tainted:
            with contextlib.suppress(Error):
                await self.context.tracing.start_chunk()
                self.recording = True
        if not path.exists():
            return False
        await asyncio.to_thread(scrub, path, list(secrets))
        return True

    async def stop(self) -> None:
        """At the run's end: discard what is left, without saving."""
        await self._settle()
        if self.enabled:
            with contextlib.suppress(Error):
                if self.recording:
                    await self.context.tracing.stop_chunk()
                await self.context.tracing.stop()
            self.recording = False
