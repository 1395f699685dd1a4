"""A journey run's browser side: one context and one page, shared by the run's browser steps.

Made on the first browser step (`ctx.resource`), closed after the run whatever happened; a context
that does not close in time means a hung browser, which is then killed so the next run relaunches.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, Request, Route
from yarl import URL

from probes.browser.cookies import CookieBridge
from probes.browser.launch import CLOSE_TIMEOUT_S, BrowserHost
from probes.browser.trace import TraceGuard
from probes.browser.vitals import INIT_SCRIPT, PageWatch
from qos_agent.plugins.context import RunContext

OPEN_TIMEOUT_S = 15.0
LIVENESS_S = 3.0  # the end-of-step cookie round trip: a browser that does not answer it by then hangs
REGION_HEADER = "X-QoS-Region"
AGENT_HEADER = "X-QoS-Agent"


def origin_of(url: str) -> str:
    """scheme://host:port of a URL (the default port written out), "" when it has none."""
    try:
        u = URL(url)
    except ValueError:
        return ""
    return f"{u.scheme}://{u.host}:{u.port}" if u.scheme and u.host and u.port else ""


async def trace_first_party(context: BrowserContext, ctx: RunContext, origins: frozenset[str]) -> None:
    """Every request to the origins the journey's `goto`s name carries `traceparent` (a new span of
    the running step each), never a third party's: its backend is not the journey's to trace."""

    async def add_header(route: Route, request: Request) -> None:
        traceparent = ctx.traceparent_header()
        headers = {**request.headers, "traceparent": traceparent} if traceparent else request.headers
        await route.continue_(headers=headers)

    await context.route(lambda url: origin_of(url) in origins, add_header)


def tracing_enabled(mode: str, attempt: int, failed_before: bool) -> bool:
    """Whether this run records a trace (the step's `trace:`). Recording costs CPU, ~+10 % per run
    (docs/benchmarks.md): `on-retry` records only a retried attempt, or — for a journey without
    retries — its next run after a failed one, so a failure that lasts leaves a trace."""
    if mode == "on-retry":
        return attempt > 1 or failed_before
    return mode in ("always", "on-failure")


class BrowserSession:
    def __init__(self, host: BrowserHost, browser: Browser, context: BrowserContext, page: Page,
                 watch: PageWatch, guard: TraceGuard, bridge: CookieBridge, ctx: RunContext,
                 keep_trace: bool = False) -> None:
        self.host = host
        self.browser = browser
        self.context = context
        self.page = page
        self.watch = watch
        self.guard = guard
        self.bridge = bridge
        self.ctx = ctx
        self.keep_trace = keep_trace  # `trace: always`: each browser step saves its part, passed or not
        self.broken = False  # crashed or hung: later steps of the run fail at once

    @property
    def alive(self) -> bool:
        return not self.broken and self.browser.is_connected() and not self.watch.crashed

    @classmethod
    async def open(cls, host: BrowserHost, ctx: RunContext, options: dict[str, Any] | None = None,
                   mode: str = "on-retry", failed_before: bool = False, origins: frozenset[str] = frozenset()
                   ) -> BrowserSession:
        """`options`: extra context options (proxy, client certificates: probes/browser/net.py);
        `mode`: the step's `trace:`; `failed_before`: the journey's previous run failed (or `check`);
        `origins`: scheme://host:port of the step's `goto`s, the only ones that get `traceparent`."""
        browser = await host.browser()
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            context = await browser.new_context(
                extra_http_headers={REGION_HEADER: ctx.region, AGENT_HEADER: ctx.agent}, **(options or {}))
            try:
                if ctx.traceparent and origins:
                    await trace_first_party(context, ctx, origins)
                await context.add_init_script(INIT_SCRIPT)
                guard = TraceGuard(context, tracing_enabled(mode, ctx.attempt, failed_before))
                await guard.start()
                page = await context.new_page()
                watch = PageWatch(page)
                page.on("domcontentloaded", lambda _: guard.document_loaded())
                await watch.attach_network()
            except BaseException:
                with contextlib.suppress(Exception):
                    await context.close()
                raise
        return cls(host, browser, context, page, watch, guard, CookieBridge(ctx.cookie_jar, context), ctx,
                   keep_trace=mode == "always")

    async def close(self) -> None:
        """Discard the trace and close the context; a browser that does not answer is killed."""
        if not self.browser.is_connected():
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if not self.broken:
                    await self.guard.stop()
                await self.context.close()
        except Exception:
            await self.host.discard(self.browser)


async def cookies_to_jar(session: BrowserSession, host: BrowserHost, *, merge: bool) -> bool:
    """End of a browser or script step: the context's cookies back into the run's jar. The round trip
    doubles as a liveness check, so a hung browser cannot hang the step: past LIVENESS_S it is marked
    broken and killed, for the next run to get a fresh one. False: timed out or failed, measure no more.
    `merge`: a script's own HTTP calls may have set cookies beside its page, so both sides' changes meet
    (`merge_to_jar`); after a browser step only the page changed them, and the context's replace the jar's."""
    try:
        async with asyncio.timeout(LIVENESS_S):
            await (session.bridge.merge_to_jar() if merge else session.bridge.to_jar())
    except TimeoutError:
        session.broken = True
        await host.discard(session.browser)
        return False
    except Exception:
        return False
    return True
