"""Script steps: the overhead of a `script` step over the same actions written as YAML browser actions.

Target: the demo service (its own process, on the other core) and its checkout page. One run = a
fresh context and page, `goto /checkout`, fill the card, click Pay, wait for "Paid", close:
- bare: a plain Playwright script doing exactly that on the same Chromium;
- yaml: `BrowserProbe.run` of a browser step with those four actions (default `trace: on-retry`);
- script: `ScriptProbe.run` of `async def pay(ctx)` doing the same four calls on `await ctx.page()`;
- script, 4 sub-steps: the same with each call in `async with ctx.step(...)` (four more step points).
Each as the runner calls it (a RunContext, `run`, `close`); both probes lease the same Chromium.
The variants alternate run by run so background load hits them alike; the bench process, the
Playwright driver and Chromium are pinned to core 0. Printed: the run's wall time, the bench
process's CPU per run (the agent's Python side: where a script step's own machinery runs), and the
step's reported `duration_ms` (opening the context is not in it, for either kind).
Run: `.venv/bin/python -m bench.bench_script [RUNS]` (default 20 per variant).
"""

from __future__ import annotations

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
from probes.browser.probe import BrowserProbe
from probes.script.probe import ScriptProbe
from qos_agent.config.loader import load_config
from qos_agent.language.secrets import Redactor
from qos_agent.model import Journey, Outcome, Step
from qos_agent.plugins.context import RunContext
from qos_agent.plugins.steps import Probe

CARD = "4242 4242 4242 4242"
SCRIPT = f"""\
from playwright.async_api import expect


async def pay(ctx):
    page = await ctx.page()
    await page.goto(ctx.vars["base"] + "/checkout")
    await page.locator("#card").fill("{CARD}")
    await page.locator("#pay").click()
    await expect(page.locator(".status")).to_contain_text("Paid")


async def pay_in_steps(ctx):
    page = await ctx.page()
    async with ctx.step("open"):
        await page.goto(ctx.vars["base"] + "/checkout")
    async with ctx.step("card"):
        await page.locator("#card").fill("{CARD}")
    async with ctx.step("pay"):
        await page.locator("#pay").click()
    async with ctx.step("paid"):
        await expect(page.locator(".status")).to_contain_text("Paid")
"""
JOURNEYS = """\
version: 1
variables: {base: "http://set-per-run"}
journeys:
  - name: yaml
    steps:
      - name: pay
        timeout: 15s
        browser:
          - goto: "{{ base }}/checkout"
          - fill: {selector: "#card", value: "CARD"}
          - click: "#pay"
          - expect_text: {selector: ".status", text: Paid}
  - name: script
    steps: [{name: pay, timeout: 15s, script: "steps/pay.py:pay"}]
  - name: script_steps
    steps: [{name: pay, timeout: 15s, script: "steps/pay.py:pay_in_steps"}]
""".replace("CARD", CARD)

Sample = tuple[float, float, float]  # wall ms, bench CPU ms, the step's duration_ms


def steps(directory: Path) -> dict[str, Step]:
    """The three steps, through the real loader (the script vetted in its child, as at start)."""
    (directory / "steps").mkdir()
    (directory / "steps" / "pay.py").write_text(SCRIPT)
    (directory / "journeys.yaml").write_text(JOURNEYS)
    config = load_config(directory / "journeys.yaml", env={})
    return {j.name: j.steps[0] for j in config.journeys}


async def bare_run(browser: Browser, base: str) -> Sample:
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(base + "/checkout")
        await page.locator("#card").fill(CARD)
        await page.locator("#pay").click()
        await expect(page.locator(".status")).to_contain_text("Paid")
    finally:
        await context.close()
    wall, cpu = (time.perf_counter_ns() - t0) / 1e6, (time.process_time_ns() - c0) / 1e6
    return wall, cpu, wall


def agent_runner(probe: Probe, step: Step, base: str, state_dir: Path) -> Callable[[], Awaitable[Sample]]:
    journey = Journey(name="checkout", steps=(step,), interval_s=60.0, location=step.location)

    async def one() -> Sample:
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        ctx = RunContext(journey=journey, region="bench", agent="bench", run_id=os.urandom(8).hex(),
                         state_dir=state_dir, variables={"base": base}, cookie_jar=aiohttp.CookieJar(unsafe=True),
                         redact=Redactor())
        try:
            result = await probe.run(step, ctx)
        finally:
            await ctx.close()
        if result.outcome is not Outcome.PASSED:
            raise RuntimeError(f"{step.kind} run failed: {result.error_message}")
        return (time.perf_counter_ns() - t0) / 1e6, (time.process_time_ns() - c0) / 1e6, result.duration_ms

    return one


def print_table(samples: dict[str, list[Sample]], wall: float) -> None:
    base_wall = statistics.median(s[0] for s in samples["yaml"])
    base_cpu = statistics.median(s[1] for s in samples["yaml"])
    rows = []
    for name, xs in samples.items():
        walls, cpus, durations = ([s[i] for s in xs] for i in range(3))
        med_wall, med_cpu = statistics.median(walls), statistics.median(cpus)
        over = "-" if name == "yaml" else f"{(med_wall - base_wall) / base_wall * 100:+.1f} %"
        cpu_over = "-" if name == "yaml" else f"{med_cpu - base_cpu:+.1f}"
        rows.append([name, str(len(xs)), fmt(med_wall), fmt(statistics.fmean(walls)), over, fmt(med_cpu), cpu_over,
                     fmt(statistics.median(durations))])
    print(table(["variant", "runs", "median wall ms", "mean wall ms", "wall vs yaml (median)",
                 "bench CPU ms/run (median)", "CPU vs yaml, ms", "step duration_ms (median)"], rows))
    print(f"\n(the variants alternated for {wall:.0f} s; bare's duration is its whole run, context included)",
          flush=True)


async def main(runs: int) -> None:
    header("Script steps: overhead over the same actions in YAML", "bench.bench_script", sys.argv[1:])
    pin(os.getpid(), client_cpus())  # inherited by the driver and Chromium, launched below
    with Demo(cpus=target_cpus()) as demo, tempfile.TemporaryDirectory() as tmp:
        others = Others()
        made = steps(Path(tmp))
        browser_probe, script_probe = BrowserProbe(), ScriptProbe()  # one Chromium, leased by both
        await browser_probe.start()
        try:
            browser = await browser_probe.host.browser()
            variants: dict[str, Callable[[], Awaitable[Sample]]] = {
                "bare Playwright": lambda: bare_run(browser, demo.url),
                "yaml": agent_runner(browser_probe, made["yaml"], demo.url, Path(tmp)),
                "script": agent_runner(script_probe, made["script"], demo.url, Path(tmp)),
                "script, 4 sub-steps": agent_runner(script_probe, made["script_steps"], demo.url, Path(tmp)),
            }
            for _ in range(3):  # warm up every path (the script's module is imported on its first run)
                for variant in variants.values():
                    await variant()
            samples: dict[str, list[Sample]] = {name: [] for name in variants}
            t_start = time.monotonic()
            for _ in range(runs):
                for name, variant in variants.items():
                    samples[name].append(await variant())
            print_table(samples, time.monotonic() - t_start)
        finally:
            await script_probe.close()
            await browser_probe.close()
    print("\n" + others.note())


if __name__ == "__main__":
    run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
