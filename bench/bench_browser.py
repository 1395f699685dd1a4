"""Browser journeys: the agent's overhead against a bare Playwright script, runs per minute, memory.

Target: the demo service (its own process, on the other core) and its checkout page. One run =
a fresh context and page, `goto /checkout`, fill the card, click Pay, wait for "Paid", close.
- bare: a plain Playwright script doing exactly that on the same Chromium (same flags).
- agent: `BrowserProbe.run` on a one-step browser journey, as the runner calls it (RunContext,
  run, close): cookie sync, vitals, network/console counters, with each `trace:` mode —
  `on-retry` (the default: a passing first attempt records no trace), `on-failure` (every run
  records a trace, discarded on success) and `off`.
The variants alternate run by run so background load hits them alike. The bench process, the
Playwright driver and Chromium are pinned to core 0: runs/minute is per core. Then bare and agent
(default trace) each run 1, 2 and 4 journeys concurrently (as `browser_concurrency` 1, 2, 4 allows):
runs/min on the one core, and the resident memory of bench + driver + Chromium at peak above the
idle browser, per concurrent context.
Run: `.venv/bin/python -m bench.bench_browser [RUNS]` (default 30 per variant).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, expect

from bench.common import Demo, Others, client_cpus, fmt, header, pin, run, table, target_cpus
from probes.browser.config import parse_browser
from probes.browser.probe import BrowserProbe
from qos_agent.language.nodes import Problems
from qos_agent.language.secrets import Redactor
from qos_agent.language.yamlload import load_nodes
from qos_agent.model import Journey, Location, Outcome, Step
from qos_agent.plugins.context import RunContext

CARD = "4242 4242 4242 4242"
STEP_YAML = """name: pay
browser:
  trace: TRACE
  actions:
    - goto: "{{ base }}/checkout"
    - fill: {selector: "#card", value: "4242 4242 4242 4242"}
    - click: "#pay"
    - expect_text: {selector: ".status", text: Paid}
"""
MODES = ("on-retry", "on-failure", "off")
CONCURRENCY = (1, 2, 4)
LOC = Location("bench", 1, 1)


def tree_rss_kb(root: int) -> int:
    """VmRSS of a process and all its descendants (the driver and every Chromium process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def make_step(trace: str) -> Step:
    problems = Problems()
    loaded = load_nodes(STEP_YAML.replace("TRACE", trace), "bench", {}, problems)
    assert loaded.root is not None
    spec = parse_browser(loaded.root, problems)
    assert not problems, problems.sorted()
    return Step(name="pay", kind="browser", spec=spec, timeout_s=15.0, location=LOC)


async def bare_run(browser: Browser, base: str) -> float:
    t0 = time.perf_counter_ns()
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(base + "/checkout")
        await page.locator("#card").fill(CARD)
        await page.locator("#pay").click()
        await expect(page.locator(".status")).to_contain_text("Paid")
    finally:
        await context.close()
    return (time.perf_counter_ns() - t0) / 1e6


def agent_runner(probe: BrowserProbe, step: Step, base: str, state_dir: Path) -> Callable[[], Awaitable[float]]:
    journey = Journey(name="checkout", steps=(step,), interval_s=60.0, location=LOC)

    async def run() -> float:
        t0 = time.perf_counter_ns()
        ctx = RunContext(journey=journey, region="bench", agent="bench", run_id=os.urandom(8).hex(),
                         state_dir=state_dir, variables={"base": base}, cookie_jar=aiohttp.CookieJar(unsafe=True),
                         redact=Redactor())
        try:
            result = await probe.run(step, ctx)
        finally:
            await ctx.close()
        if result.outcome is not Outcome.PASSED:
            raise RuntimeError(f"agent run failed: {result.error_message}")
        return (time.perf_counter_ns() - t0) / 1e6

    return run


async def concurrently(run: Callable[[], Awaitable[float]], width: int, runs: int) -> tuple[float, int]:
    """`width` loops of `runs` runs at once: (runs/min, peak RSS of bench+driver+Chromium in kB)."""
    peak = tree_rss_kb(os.getpid())
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kb(os.getpid()))
            await asyncio.sleep(0.2)

    async def loop() -> None:
        for _ in range(runs):
            await run()

    sampler = asyncio.create_task(sample())
    t0 = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(width)))
    wall = time.monotonic() - t0
    done.set()
    await sampler
    return width * runs * 60 / wall, peak


def print_overhead(samples: dict[str, list[float]], wall: float) -> None:
    bare_med = statistics.median(samples["bare"])
    rows = []
    for name, xs in samples.items():
        med, mean = statistics.median(xs), statistics.fmean(xs)
        over = "-" if name == "bare" else f"{(med - bare_med) / bare_med * 100:+.1f} %"
        rows.append([name, str(len(xs)), fmt(med), fmt(mean), fmt(min(xs)), over, fmt(60_000 / mean, 0)])
    print(table(["variant", "runs", "median ms", "mean ms", "min ms", "overhead (median)", "runs/min, 1 core"],
                rows))
    print(f"\n(the variants alternated for {wall:.0f} s; target: ≤ 10 % overhead with the default trace mode)",
          flush=True)


async def main(runs: int) -> None:
    header("Browser journeys: overhead, runs per minute, memory", "bench.bench_browser", sys.argv[1:])
    pin(os.getpid(), client_cpus())  # inherited by the driver and Chromium, launched below
    with Demo(cpus=target_cpus()) as demo, tempfile.TemporaryDirectory() as tmp:
        others = Others()
        probe = BrowserProbe()
        await probe.start()
        try:
            browser = await probe.host.browser()
            agents = {mode: agent_runner(probe, make_step(mode), demo.url, Path(tmp)) for mode in MODES}
            for _ in range(3):  # warm up every path
                await bare_run(browser, demo.url)
                for agent in agents.values():
                    await agent()
            samples: dict[str, list[float]] = {"bare": [], **{f"agent, trace: {m}": [] for m in MODES}}
            t_start = time.monotonic()
            for _ in range(runs):
                samples["bare"].append(await bare_run(browser, demo.url))
                for mode, agent in agents.items():
                    samples[f"agent, trace: {mode}"].append(await agent())
            wall = time.monotonic() - t_start
            print_overhead(samples, wall)  # now: a slow machine may not reach the end

            idle = tree_rss_kb(os.getpid())
            conc: list[list[str]] = []
            per = max(2, runs // 3)
            for width in CONCURRENCY:
                bare_rate, bare_peak = await concurrently(lambda: bare_run(browser, demo.url), width, per)
                agent_rate, agent_peak = await concurrently(agents["on-retry"], width, per)
                conc.append([str(width), fmt(bare_rate, 0), fmt(agent_rate, 0), f"{agent_rate / bare_rate:.0%}",
                             f"{(bare_peak - idle) / 1024 / width:.0f}", f"{(agent_peak - idle) / 1024 / width:.0f}"])
        finally:
            await probe.close()

    print(f"\nConcurrent journeys, {per} runs each, all on one core; idle bench+driver+Chromium RSS "
          f"{idle / 1024:.0f} MB:\n")
    print(table(["concurrent", "bare runs/min", "agent runs/min", "agent / bare", "bare MB per context (peak)",
                 "agent MB per context (peak)"], conc))
    print("\n" + others.note())


if __name__ == "__main__":
    run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
