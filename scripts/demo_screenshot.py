"""Re-draws docs/img/demo.png: the terminal output of `qos-agent demo`, rendered by headless Chromium.

Run: `.venv/bin/python scripts/demo_screenshot.py` (about 40 s).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright
from rich.console import Console

from qos_agent.demo.live import Timeline, run_demo
from qos_agent.reports.table import show_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


async def main() -> None:
    console = Console(record=True, width=118, force_terminal=False, highlight=False)
    with tempfile.TemporaryDirectory() as tmp:
        db = await run_demo(Path(tmp), Timeline(interval_s=1.0, fault_at_s=8.0, heal_at_s=20.0, end_at_s=40.0),
                            console)
        console.print()
        show_report(db, None, console)
    svg = Path(tmp + ".svg")
    console.save_svg(str(svg), title="qos-agent demo")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 780, "height": 400}, device_scale_factor=1)
        await page.goto(svg.as_uri())
        await page.locator("svg").screenshot(path=str(ROOT / "docs" / "img" / "demo.png"))
        await browser.close()
    svg.unlink()


if __name__ == "__main__":
    asyncio.run(main())
