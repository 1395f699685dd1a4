"""One Chromium for the whole agent: launched lazily under a lock, relaunched after a crash or hang.

The executable is Debian's `/usr/bin/chromium` (env `QOS_CHROMIUM` overrides it); Playwright's own
browser download (`playwright install`) is never used. Each launch carries a unique marker switch so
the agent (and tests) can find the browser's process and kill it when it stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from pathlib import Path

from playwright.async_api import Browser, Playwright, async_playwright

from qos_agent.errors import SetupError

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# The closed network here needs the background-networking switches: no update or sync pings.
FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync")
MARKER = "--qos-agent-browser="
LAUNCH_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 5.0


def chromium_path() -> str:
    return os.environ.get("QOS_CHROMIUM", DEFAULT_CHROMIUM)


def missing_message(path: str) -> str:
    return (f"chromium not found at {path} (apt-get install chromium, or point the environment variable "
            f"QOS_CHROMIUM at a Chromium executable)")


def browser_pids(marker: str) -> list[int]:
    """Processes whose command line carries our marker: the browser (children do not inherit it)."""
    pids = []
    needle = (MARKER + marker).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
    return pids


class BrowserHost:
    """Holds the Playwright driver and the one browser; hands out a connected browser."""

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or chromium_path()
        self._lock = asyncio.Lock()
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self.marker = ""
        self.launches = 0
        self.leases = 0  # kinds sharing it (`lease_host`): the browser and script kinds of one agent

    def check(self) -> None:
        if not (os.path.isfile(self.executable) and os.access(self.executable, os.X_OK)):
            raise SetupError(missing_message(self.executable))

    async def browser(self) -> Browser:
        """The connected browser, launching one (again) when there is none."""
        b = self._browser
        if b is not None and b.is_connected():
            return b
        async with self._lock:
            b = self._browser
            if b is not None and b.is_connected():
                return b
            await self._drop()
            self.check()
            if self._pw is None:
                self._pw = await async_playwright().start()
            marker = uuid.uuid4().hex
            async with asyncio.timeout(LAUNCH_TIMEOUT_S):
                b = await self._pw.chromium.launch(
                    executable_path=self.executable, headless=True, args=[*FLAGS, MARKER + marker])
            b.on("disconnected", self._on_disconnected)
            self._browser, self.marker = b, marker
            self.launches += 1
            return b

    def _on_disconnected(self, browser: Browser) -> None:
        if self._browser is browser:
            self._browser = None

    def pids(self) -> list[int]:
        return browser_pids(self.marker) if self.marker else []

    async def discard(self, browser: Browser | None = None) -> None:
        """Give up on a browser that stopped answering: kill its process; the next run relaunches."""
        if browser is not None and browser is not self._browser:
            return
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        b, marker = self._browser, self.marker
        self._browser, self.marker = None, ""
        for pid in browser_pids(marker) if marker else []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if b is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await b.close()

    async def release(self) -> None:
        """A kind is done with a host it leased (`lease_host`): the last one closes the browser."""
        self.leases -= 1
        if self.leases > 0:
            return
        for key, (host, _) in list(_LEASED.items()):
            if host is self:
                del _LEASED[key]
        await self.close()

    async def close(self) -> None:
        async with self._lock:
            b, self._browser = self._browser, None
            if b is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await b.close()
            if self.marker:
                for pid in browser_pids(self.marker):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                self.marker = ""
            pw, self._pw = self._pw, None
            if pw is not None:
                with contextlib.suppress(Exception):
                    await pw.stop()


# One host per executable and event loop: an agent's browser and script steps drive one Chromium.
_LEASED: dict[tuple[str, int], tuple[BrowserHost, asyncio.AbstractEventLoop]] = {}


def lease_host(executable: str | None = None) -> BrowserHost:
    """The agent's one browser host, shared by every kind that drives a page (browser, script);
    give it back with `release()`. Outside a running loop (nothing to share with): a host of its own."""
    path = executable or chromium_path()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        host = BrowserHost(path)
        host.leases = 1
        return host
    key = (path, id(loop))
    held = _LEASED.get(key)
    if held is None or held[1] is not loop:
        held = (BrowserHost(path), loop)
        _LEASED[key] = held
    held[0].leases += 1
    return held[0]
