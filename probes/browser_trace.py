"""The run's Playwright trace, kept free of typed secrets.

Tracing starts when the run's context is made (screenshots + DOM snapshots, no sources) and is
saved only when a step fails (`trace.zip`); a passing run's trace is discarded.

What a saved trace may hold: every traced action with its parameters (selectors, URLs, typed text
that is not a secret), DOM snapshots before/after each action (including input values),
screencast frames, console messages, and the network log (URLs, request and response headers
including cookies, request bodies, response bodies). URLs and cookies are recorded as they are.

What it never holds: a value typed from a secret. When a `fill`, `select` or `press` is about to
send a value containing a secret (`ctx.redact.secrets`), the current trace chunk is discarded and
tracing stays off while the page may still hold the value: the action itself, its DOM (the input's
value), its screencast frames and the request that submits it are never recorded. Tracing resumes
with a new chunk at the first action after a new document has loaded. So a trace covers the run
since its start or since the last such resumption; a step that fails while tracing is off gets a
screenshot (secret inputs masked) and no trace.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from playwright.async_api import BrowserContext, Error


class TraceGuard:
    def __init__(self, context: BrowserContext, enabled: bool) -> None:
        self.context = context
        self.enabled = enabled
        self.recording = False
        self.secret_selectors: list[str] = []  # inputs of the current document holding a secret
        self._tainted_at: int | None = None  # documents-loaded count when a secret was typed
        self._documents = 0

    async def start(self) -> None:
        if self.enabled:
            await self.context.tracing.start(screenshots=True, snapshots=True, sources=False)
            self.recording = True

    def document_loaded(self) -> None:
        self._documents += 1

    async def before(self, secret_selector: str | None) -> None:
        """Called before each action; `secret_selector` set when the action types a secret."""
        if self._tainted_at is not None and self._documents > self._tainted_at:
            self._tainted_at = None
            self.secret_selectors.clear()
            if self.enabled and not self.recording:
                await self.context.tracing.start_chunk()
                self.recording = True
        if secret_selector is None:
            return
        self.secret_selectors.append(secret_selector)
        self._tainted_at = self._documents
        if self.recording:
            self.recording = False
            await self.context.tracing.stop_chunk()  # discarded: it may already show the form

    async def save(self, path: Path) -> bool:
        """Write the chunk so far to `path` and go on recording; False when nothing was recording."""
        if not self.recording:
            return False
        self.recording = False
        try:
            await self.context.tracing.stop_chunk(path=path)
        except Error:
            return False
        if self._tainted_at is None:
            with contextlib.suppress(Error):
                await self.context.tracing.start_chunk()
                self.recording = True
        return path.exists()

    async def stop(self) -> None:
        """At the run's end: discard what is left, without saving."""
        if self.enabled:
            with contextlib.suppress(Error):
                if self.recording:
                    await self.context.tracing.stop_chunk()
                await self.context.tracing.stop()
            self.recording = False
