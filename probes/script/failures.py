"""What a script's exception means: its class, a one-line message, and where in the script it happened.

`AssertionError` is `assertion` (Playwright's `expect` raises it too); Playwright's timeouts are
`timeout` and its other errors `browser`; aiohttp's errors get the http step's classes
(probes/common/http_errors.py); anything else — `SystemExit` and `KeyboardInterrupt` from the
script included — is `script`. The message names the exception, the script's file:line and the
sub-step it happened in; it never carries a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from types import FrameType
from typing import Any

from probes.script.vet import script_line
from qos_agent.errors import StepFailure
from qos_agent.language.text import one_line
from qos_agent.model import ErrorClass

MESSAGE_LIMIT = 300


class ScriptUsageError(Exception):
    """The script used its context wrongly (a bad sub-step name, too many sub-steps): class `script`."""


def _playwright(exc: BaseException) -> tuple[ErrorClass, str] | None:
    if "playwright" not in sys.modules:  # (a script that never drove a page raised no Playwright error)
        return None
    from playwright.async_api import Error
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    if not isinstance(exc, Error):
        return None
    from probes.browser.actions import short_error

    error = ErrorClass.TIMEOUT if isinstance(exc, PlaywrightTimeout) else ErrorClass.BROWSER
    return error, short_error(exc)


def _aiohttp(exc: BaseException) -> tuple[ErrorClass, str] | None:
    if "aiohttp" not in sys.modules:
        return None
    import aiohttp

    if not isinstance(exc, aiohttp.ClientError):
        return None
    from probes.common.http_errors import classify

    return classify(exc, "in ctx.http", 0.0)


def _assertion(exc: AssertionError) -> str:
    """A failed `assert` as its message; Playwright's `expect` without its call log."""
    text = str(exc)
    if "playwright" in sys.modules and "Call log:" in text:
        from probes.browser.actions import short_error

        return short_error(exc)
    return _named(exc) if text.strip() else "AssertionError (an assert failed)"


def _named(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException) -> tuple[ErrorClass, str]:
    """(class, what happened) of an exception a script raised; never raises itself."""
    try:
        if isinstance(exc, StepFailure):  # the agent's own (the run's page could not be opened)
            return exc.error, exc.message
        if isinstance(exc, AssertionError):
            return ErrorClass.ASSERTION, _assertion(exc)
        found = _playwright(exc) or _aiohttp(exc)
        if found is not None:
            return found
        if isinstance(exc, TimeoutError):
            return ErrorClass.TIMEOUT, _named(exc)
        if isinstance(exc, SystemExit):
            return ErrorClass.SCRIPT, f"SystemExit({exc.code!r}): the script tried to end the agent; it carries on"
        if isinstance(exc, KeyboardInterrupt):
            return ErrorClass.SCRIPT, "KeyboardInterrupt raised by the script; the agent carries on"
        return ErrorClass.SCRIPT, _named(exc)
    except Exception as e:  # an exception whose str() raises, and the like
        return ErrorClass.SCRIPT, f"{type(exc).__name__} (its message could not be read: {type(e).__name__})"


def where(label: str, line: int, substep: str) -> str:
    """` (at steps/pay.py:12, in sub-step 'card')`: the place a message names (empty parts left out)."""
    parts = [f"at {label}:{line}"] if line else []
    if substep:
        parts.append(f"in sub-step '{substep}'")
    return f" ({', '.join(parts)})" if parts else ""


def failure_message(exc: BaseException, file: str, label: str, substep: str) -> tuple[ErrorClass, str]:
    """The class and the whole message of a script's exception, located in the script."""
    error, what = classify(exc)
    line = script_line(exc.__traceback__, file)
    return error, one_line(what, MESSAGE_LIMIT) + where(label, line, substep)


def awaiting_line(coro: Coroutine[Any, Any, Any], file: str) -> int:
    """The script's line a suspended coroutine waits at (the deepest of its awaits in `file`), 0 if none."""
    line = 0
    current: Any = coro
    for _ in range(200):  # an await chain is short; a cycle is never followed for long
        frame: FrameType | None = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        if frame is None:
            break
        if frame.f_code.co_filename == file:
            line = frame.f_lineno
        current = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
        if current is None:
            break
    return line
