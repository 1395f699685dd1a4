"""What each part of a browser step's measurement costs, on the bench_browser journey.

The same run as bench_browser's bare Playwright script (a fresh context, `goto /checkout`, fill the
card, click Pay, wait for "Paid", close), with one of the agent's measurement parts added, then all
of them, made from the agent's own pieces: the vitals init script (`INIT_SCRIPT`), the CDP network
counters (a session with the agent's four `Network.*` listeners, `Network.enable`), the cookie
round trips (`clear_cookies` before, `cookies()` after: the bridge's calls when the jar is not
empty) and the `COLLECT` evaluate at the step's end. Variants alternate run by run; bench, driver
and Chromium are pinned to core 0. Printed per variant: wall time and the CPU time the whole machine
was busy during the run (/proc/stat: Chromium's renderer and GPU processes, the driver, this process,
also those that exited; the demo's share is the same for every variant), medians and means, each against the bare run.
Run: `.venv/bin/python -m bench.bench_browser_parts [RUNS]` (default 40 per variant).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from playwright.async_api import Browser, BrowserContext, Page, expect

from bench.bench_browser import CARD
from bench.common import Demo, Others, client_cpus, fmt, header, machine_busy_s, pin, run, table, target_cpus
from probes.browser.probe import BrowserProbe
from probes.browser.vitals import COLLECT, INIT_SCRIPT

NETWORK_EVENTS = ("requestWillBeSent", "responseReceived", "loadingFinished", "loadingFailed")


@dataclass(frozen=True)
class Parts:
    init_script: bool = False
    cdp_network: bool = False
    cookies: bool = False
    collect: bool = False


VARIANTS = {
    "bare Playwright": Parts(),
    "+ vitals init script": Parts(init_script=True),
    "+ CDP network counters": Parts(cdp_network=True),
    "+ cookie round trips": Parts(cookies=True),
    "+ COLLECT evaluate": Parts(collect=True),
    "all of them (the agent's set)": Parts(True, True, True, True),
}


def journey(browser: Browser, url: str, parts: Parts) -> Callable[[], Awaitable[None]]:
    async def one() -> None:
        context: BrowserContext = await browser.new_context()
        try:
            if parts.init_script:
                await context.add_init_script(INIT_SCRIPT)
            page: Page = await context.new_page()
            if parts.cdp_network:
                cdp = await context.new_cdp_session(page)
                for event in NETWORK_EVENTS:
                    cdp.on(f"Network.{event}", lambda _: None)
                await cdp.send("Network.enable")
            if parts.cookies:
                await context.clear_cookies()
            await page.goto(url)
            await page.locator("#card").fill(CARD)
            await page.locator("#pay").click()
            await expect(page.locator(".status")).to_contain_text("Paid")
            if parts.cookies:
                await context.cookies()
            if parts.collect:
                await page.evaluate(COLLECT)
        finally:
            await context.close()
    return one


async def main(runs: int) -> None:
    header("Browser step: what each measurement part costs", "bench.bench_browser_parts", sys.argv[1:])
    pin(os.getpid(), client_cpus())  # inherited by the driver and Chromium, launched below
    with Demo(cpus=target_cpus()) as demo:
        others = Others()
        probe = BrowserProbe()  # the agent's own launch of Debian's chromium
        await probe.start()
        try:
            browser = await probe.host.browser()
            runs_of = {name: journey(browser, demo.url + "/checkout", parts) for name, parts in VARIANTS.items()}
            for _ in range(3):  # warm up every path
                for one in runs_of.values():
                    await one()
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
            for _ in range(runs):
                for name, one in runs_of.items():
                    cpu0, t0 = machine_busy_s(), time.perf_counter()
                    await one()
                    samples[name].append((time.perf_counter() - t0, machine_busy_s() - cpu0))
        finally:
            await probe.close()
    bare_wall = statistics.median(w for w, _ in samples["bare Playwright"])
    bare_cpu = statistics.fmean(c for _, c in samples["bare Playwright"])
    rows = []
    for name, xs in samples.items():
        wall, cpu = statistics.median(w for w, _ in xs), statistics.fmean(c for _, c in xs)
        rows.append([name, fmt(wall * 1000), f"{(wall / bare_wall - 1) * 100:+.1f} %",
                     fmt(statistics.median(c for _, c in xs) * 1000, 0), fmt(cpu * 1000),
                     f"{(cpu / bare_cpu - 1) * 100:+.1f} %"])
    print(table(["variant", "median wall ms", "vs bare", "median CPU ms", "mean CPU ms", "mean CPU vs bare"], rows))
    print(f"\n{runs} runs per variant, alternating; CPU: the whole machine busy during the run, "
          "in 10 ms ticks (read the means)\n" + others.note())


if __name__ == "__main__":
    run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
