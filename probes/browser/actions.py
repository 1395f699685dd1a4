"""Runs one browser action on the run's page; a failure becomes a short, classified `ActionFailed`.

Messages name the action's index and target, e.g. `action 3 (click "text=Pay"): Timeout 5000ms
exceeded`, from the first line of Playwright's error (its call log is left out).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Error, Page, TimeoutError, expect

from probes.browser.artifacts import free_path
from probes.browser.config import EXPECT_VERBS, Action
from qos_agent.errors import StepFailure
from qos_agent.language.text import shown as quoted
from qos_agent.model import ErrorClass
from qos_agent.plugins.context import RunContext

SECRET_VERBS = frozenset({"fill", "select", "press"})
_NET_CLASSES = (
    ("ERR_NAME_NOT_RESOLVED", ErrorClass.DNS), ("ERR_NAME_RESOLUTION_FAILED", ErrorClass.DNS),
    ("ERR_CERT", ErrorClass.TLS), ("ERR_SSL", ErrorClass.TLS),
    ("ERR_CONNECTION", ErrorClass.CONNECT), ("ERR_ADDRESS_UNREACHABLE", ErrorClass.CONNECT),
    ("ERR_TIMED_OUT", ErrorClass.TIMEOUT), ("ERR_TOO_MANY_REDIRECTS", ErrorClass.REDIRECTS),
)
_PREFIX = re.compile(r"^[A-Za-z]+\.[A-Za-z_]+: ")
CLOSED = "the browser closed or crashed"
MAX_MESSAGE = 300


class ActionFailed(StepFailure):
    """A browser action failed: its class and a short message (a StepFailure like every kind's)."""


def typed_value(action: Action, ctx: RunContext) -> str | None:
    """The rendered value an action types into the page (fill/select/press), else None."""
    return ctx.render(action.value) if action.verb in SECRET_VERBS else None


def holds_secret(value: str | None, ctx: RunContext) -> bool:
    return value is not None and any(s in value for s in ctx.redact.secrets)


def short_error(exc: BaseException) -> str:
    """Playwright's message without the call log: the first line, plus the actual value if any."""
    text = exc.message if isinstance(exc, Error) else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    first = _PREFIX.sub("", lines[0]).rstrip(".")
    if "closed" in first and ("Target" in first or "has been closed" in first):
        return CLOSED
    actual = next((line for line in lines[1:] if line.lower().startswith(("actual value", "received"))), None)
    if actual:
        first += f" ({actual})"
    return first[:MAX_MESSAGE]


def classify(action: Action, exc: BaseException) -> ErrorClass:
    if action.verb in EXPECT_VERBS and isinstance(exc, AssertionError):
        return ErrorClass.ASSERTION
    if action.verb == "goto":
        if isinstance(exc, TimeoutError):
            return ErrorClass.TIMEOUT
        text = str(exc)
        for needle, error in _NET_CLASSES:
            if needle in text:
                return error
    if action.verb == "extract" and not isinstance(exc, Error):
        return ErrorClass.EXTRACT
    return ErrorClass.BROWSER


class ActionRunner:
    """Performs actions on one page; `artifacts` and `extracted` collect what they leave."""

    def __init__(self, page: Page, ctx: RunContext, masks: list[str], step_masks: tuple[str, ...] = ()) -> None:
        self.page = page
        self.ctx = ctx
        self.masks = masks  # selectors of inputs holding a typed secret: masked in screenshots
        self.step_masks = step_masks  # the step's `mask:` selectors (a page that renders a secret)
        self.artifacts: dict[str, str] = {}
        self.extracted: dict[str, str] = {}
        self.nav_status: int | None = None

    async def run(self, action: Action, timeout_ms: float) -> None:
        try:
            await self._do(action, max(1.0, timeout_ms))
        except ActionFailed:
            raise
        except (Error, AssertionError) as exc:
            msg = f"action {action.index} ({action.label}): {short_error(exc)}"
            raise ActionFailed(classify(action, exc), msg) from None

    async def _do(self, a: Action, ms: float) -> None:
        page, render = self.page, self.ctx.render
        loc = page.locator(render(a.selector)) if a.selector else None
        if a.verb == "goto":
            resp = await page.goto(render(a.value), wait_until=a.wait_until,  # type: ignore[arg-type]
                                   timeout=ms)
            self.nav_status = resp.status if resp is not None else None
        elif a.verb == "click":
            assert loc is not None
            await loc.click(timeout=ms)
        elif a.verb == "fill":
            assert loc is not None
            await loc.fill(render(a.value), timeout=ms)
        elif a.verb == "select":
            assert loc is not None
            await loc.select_option(render(a.value), timeout=ms)
        elif a.verb == "press":
            assert loc is not None
            await loc.press(render(a.value), timeout=ms)
        elif a.verb == "wait_for":
            assert loc is not None
            await loc.wait_for(state=a.state, timeout=ms)  # type: ignore[arg-type]
        elif a.verb == "expect_text":
            assert loc is not None
            want: Any = re.compile(render(a.regex)) if a.regex else render(a.value)
            await expect(loc).to_contain_text(want, timeout=ms)
        elif a.verb == "expect_url":
            url: Any = re.compile(render(a.regex)) if a.regex else render(a.value)
            try:
                await expect(page).to_have_url(url, timeout=ms)
            except AssertionError:
                how = f"match {quoted(url.pattern)}" if a.regex else f"be {quoted(url)}"
                raise AssertionError(f"URL expected to {how} (Actual value: {page.url})") from None
        elif a.verb == "screenshot":
            await self.screenshot(a.value, ms, full_page=a.full_page, key=f"screenshot_{a.value}")
        elif a.verb == "extract":
            assert loc is not None
            text = (await loc.inner_text(timeout=ms)).strip()
            self.extracted[a.value] = text
            self.ctx.variables[a.value] = text  # later actions of this step may use it too

    async def screenshot(self, name: str, ms: float, full_page: bool = False, key: str = "screenshot") -> None:
        directory = self.ctx.artifacts_dir
        directory.mkdir(parents=True, exist_ok=True)
        path: Path = free_path(directory, name, ".png")
        await self.page.screenshot(path=path, full_page=full_page, timeout=ms,
                                   mask=[self.page.locator(s) for s in (*self.masks, *self.step_masks)])
        self.artifacts[key] = str(path)
