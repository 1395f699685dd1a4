"""`script` steps run by the agent's Runner against the demo service and its pages, in real Chromium
(issue 25): loops and branches, a field inside an iframe, values and cookies both ways between
scripts and YAML steps, sub-steps as step points, every failure classified and located (Playwright,
aiohttp, assertions, a crash, SystemExit, KeyboardInterrupt, an import error, a missing function, a
script that awaits forever or ignores its cancellation), secrets masked, evidence kept, and a
script that blocks the event loop marked `lagged` and named in a warning."""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from qos_agent.config.loader import load_config
from qos_agent.demo import FaultBook, start_demo
from qos_agent.model import ErrorClass, JourneyResult, Outcome, StepResult
from qos_agent.runloop.runner import ProbeSet, Runner
from tests.support.cli import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

CARD = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
SHOP = """\
from playwright.async_api import expect


async def shop(ctx):
    page = await ctx.page()
    async with ctx.step("open"):
        await page.goto(ctx.vars["base"] + "/checkout/hosted")
        await page.wait_for_function("() => window.demoShop && window.demoShop.ready")
    ctx.vars["banner"] = "no"
    if await page.locator("#consent").is_visible():
        async with ctx.step("consent"):
            await page.locator("#accept").click()
            ctx.vars["banner"] = "closed"
    async with ctx.step("pick"):
        for item in await page.locator("#products li").all():
            if int(await item.get_attribute("data-stock") or 0) > 0:
                await item.locator(".add").click()
                ctx.vars["picked"] = await item.get_attribute("data-sku")
                break
    async with ctx.step("card"):
        await page.frame_locator("#card-frame").locator("#number").fill(ctx.vars["card"])
    async with ctx.step("pay"):
        await page.locator("#pay").click()
        await expect(page.locator(".status")).to_have_text("Paid", timeout=4000)
        ctx.vars["order_id"] = await page.evaluate("() => window.demoShop.order")
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def demo() -> AsyncIterator[tuple[str, FaultBook]]:
    book = FaultBook(seed=25)
    runner, url = await start_demo("127.0.0.1", 0, book)
    try:
        yield url, book
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def probes() -> AsyncIterator[ProbeSet]:
    """The probes of one agent for the whole module (one Chromium, the script modules cached), as `check`."""
    probes = ProbeSet(one_shot=True)
    try:
        yield probes
    finally:
        await probes.close()


async def run(tmp: Path, base: str, probes: ProbeSet, steps: str, scripts: dict[str, str],
              env: dict[str, str] | None = None, runs: int = 1) -> list[JourneyResult]:
    """Journey `j` of these steps (the scripts written to tmp/steps), run `runs` times by the Runner."""
    (tmp / "steps").mkdir(exist_ok=True)
    for name, text in scripts.items():
        (tmp / "steps" / name).write_text(textwrap.dedent(text))
    path = tmp / "journeys.yaml"
    path.write_text(f"version: 1\nagent: {{state_dir: {tmp / 'state'}, region: eu-west}}\n"
                    f"variables: {{base: '{base}', card: '{CARD}'}}\njourneys:\n  - name: j\n    steps:\n"
                    + textwrap.indent(textwrap.dedent(steps), "      "))
    config = load_config(path, env=env or {})
    runner = Runner(config, probes=probes)
    journey = config.journeys[0]
    results = [await runner.run_once(journey) for _ in range(runs)]
    runner.looplag.stop()
    return results


def by_name(result: JourneyResult) -> dict[str, StepResult]:
    return {s.step: s for s in result.steps}


async def test_a_script_loops_branches_and_fills_a_field_inside_an_iframe(demo: tuple[str, FaultBook],
                                                                          probes: ProbeSet, tmp_path: Path) -> None:
    [r] = await run(tmp_path, demo[0], probes, """\
        - {name: first, script: {path: steps/shop.py, function: shop, sets: [banner, picked, order_id]}}
        - {name: again, script: {path: steps/shop.py, function: shop, sets: [banner]}}
        - name: receipt
          http: {method: POST, url: "{{ base }}/api/tickets", json: {subject: "{{ picked }} {{ order_id }}"}}
          expect: {status: 201, body_contains: "tee-blue-m o-"}
        """, {"shop.py": SHOP})
    assert r.outcome is Outcome.PASSED, r.error_message
    assert [s.step for s in r.steps] == [
        "first.open", "first.consent", "first.pick", "first.card", "first.pay", "first",
        "again.open", "again.pick", "again.card", "again.pay", "again", "receipt"]  # no banner the second time
    first, again = by_name(r)["first"], by_name(r)["again"]
    assert first.extracted["picked"] == "tee-blue-m"  # the first product in stock, past the sold-out one
    assert first.extracted["banner"] == "closed" and again.extracted["banner"] == "no"  # its cookie stayed
    assert first.extracted["order_id"].startswith("o-")
    assert all(s.outcome is Outcome.PASSED and s.probe == "script" and s.duration_ms > 0 for s in r.steps[:11])
    assert first.url.endswith("/checkout/hosted") and first.metrics["requests"] >= 3 and first.bytes > 0
    assert first.start_ms < by_name(r)["first.open"].start_ms < by_name(r)["first.pay"].start_ms


async def test_values_and_cookies_flow_both_ways_between_scripts_and_yaml_steps(
        demo: tuple[str, FaultBook], probes: ProbeSet, tmp_path: Path) -> None:
    [r] = await run(tmp_path, demo[0], probes, """\
        - name: login
          http: {method: POST, url: "{{ base }}/api/login", json: {user: demo, password: demo}}
          extract: {token: {json: "$.token"}}
        - {name: api, script: {path: steps/both.py, function: api, sets: [invoice, total]}}
        - name: dashboard
          browser:
            - goto: "{{ base }}/dashboard?invoice={{ invoice }}"
            - expect_text: {selector: "#welcome", text: "Welcome, demo"}
            - extract: {selector: "#welcome", name: welcome}
        - {name: page, script: {path: steps/both.py, function: page, sets: [seen]}}
        - name: back
          http: {url: "{{ base }}/api/invoices/{{ invoice }}"}
          expect: {status: 200, body_contains: "{{ invoice }}"}
          extract: {consent: {cookie: consent}}
        """, {"both.py": """\
        async def api(ctx):
            # the token a YAML step extracted; the session cookie it got, on the run's jar
            bearer = await ctx.http.get(ctx.vars["base"] + "/api/invoices",
                                        headers={"Authorization": "Bearer " + ctx.vars["token"]})
            cookie = await ctx.http.get(ctx.vars["base"] + "/api/cart/c1")
            assert bearer.status == 200 and cookie.status == 200, (bearer.status, cookie.status)
            ctx.vars["invoice"] = (await bearer.json())[0]["id"]
            ctx.vars["total"] = (await cookie.json())["total"]  # a number: passed on as text

        async def page(ctx):
            page = await ctx.page()  # the browser step's page, where it was left
            assert "invoice=" + ctx.vars["invoice"] in page.url, page.url
            ctx.vars["seen"] = ctx.vars["welcome"]
            await page.goto(ctx.vars["base"] + "/checkout/hosted")
            await page.locator("#accept").click()  # the page sets a cookie: later HTTP steps send it
        """})
    assert r.outcome is Outcome.PASSED, r.error_message
    steps = by_name(r)
    assert steps["api"].extracted == {"invoice": "inv-1001", "total": "48.0"}
    assert steps["page"].extracted == {"seen": "Welcome, demo"}
    assert steps["back"].extracted == {"consent": "yes"}


async def test_a_failing_sub_step_fails_the_journey_there_located_with_evidence(
        demo: tuple[str, FaultBook], probes: ProbeSet, tmp_path: Path) -> None:
    [r] = await run(tmp_path, demo[0], probes, """\
        - {name: pay, script: "steps/shop.py:shop"}
        - {name: after, http: {url: "{{ base }}/health"}}
        """, {"shop.py": SHOP.replace('ctx.vars["card"]', f'"{DECLINED}"')})
    assert r.outcome is Outcome.FAILED and r.failed_step == "pay.pay" and r.error is ErrorClass.ASSERTION
    assert "Failed: HTTP 402" in r.error_message and "(at steps/shop.py:24)" in r.error_message
    steps = by_name(r)
    assert steps["pay"].error_message.endswith("(at steps/shop.py:24, in sub-step 'pay')")
    assert steps["pay.card"].outcome is Outcome.PASSED and steps["after"].outcome is Outcome.SKIPPED
    shot, trace = Path(steps["pay"].artifacts["screenshot"]), Path(steps["pay"].artifacts["trace"])
    assert shot.stat().st_size > 0 and trace.stat().st_size > 0
    assert "Traceback" not in r.error_message


async def test_every_failure_is_classified_and_located_and_the_runs_go_on(
        demo: tuple[str, FaultBook], probes: ProbeSet, tmp_path: Path) -> None:
    cases = {
        "assert_": (ErrorClass.ASSERTION, "AssertionError: total is 0 (at steps/fail.py:6)"),
        "crash": (ErrorClass.SCRIPT, "ZeroDivisionError: division by zero (at steps/fail.py:9, in sub-step 'math')"),
        "exits": (ErrorClass.SCRIPT, "SystemExit(3): the script tried to end the agent; it carries on "
                                     "(at steps/fail.py:13)"),
        "interrupts": (ErrorClass.SCRIPT, "KeyboardInterrupt raised by the script; the agent carries on "
                                          "(at steps/fail.py:16)"),
        "pw_timeout": (ErrorClass.TIMEOUT, "Timeout 300ms exceeded (at steps/fail.py:20, in sub-step 'wait')"),
        "pw_error": (ErrorClass.BROWSER, "(at steps/fail.py:24)"),
        "refused": (ErrorClass.CONNECT, "cannot connect to 127.0.0.1:9: connection refused (at steps/fail.py:27)"),
        "unset": (ErrorClass.EXTRACT, "the script set no ctx.vars['x'] (the step lists it in sets; steps/fail.py)"),
        "too_many": (ErrorClass.SCRIPT, "at most 20 sub-steps per step (time a loop as one sub-step) "
                                        "(at steps/fail.py:34)"),
        "bad_name": (ErrorClass.SCRIPT, "ctx.step('a b'): a sub-step name is 1-100 letters"),
    }
    steps = "".join(f'- {{name: {n}, always_run: true, script: {{path: steps/fail.py, function: {n}'
                    + (", sets: [x]" if n == "unset" else "") + "}}\n" for n in cases)
    [r] = await run(tmp_path, demo[0], probes, steps + "- {name: ok, always_run: true, script: 'steps/fail.py:ok'}\n",
                    {"fail.py": """\
        import sys


        async def assert_(ctx):
            total = 0
            assert total > 0, "total is 0"

        async def crash(ctx):
            async with ctx.step("math"): 1 / 0

        async def exits(ctx):
            print("bye")
            sys.exit(3)

        async def interrupts(ctx):
            raise KeyboardInterrupt

        async def pw_timeout(ctx):
            page = await ctx.page()
            async with ctx.step("wait"): await page.locator("#never").wait_for(timeout=300)

        async def pw_error(ctx):
            page = await ctx.page()
            await page.locator("!!!").click(timeout=300)

        async def refused(ctx):
            await ctx.http.get("http://127.0.0.1:9/")

        async def unset(ctx):
            pass

        async def too_many(ctx):
            for i in range(21):
                async with ctx.step(f"s{i}"):
                    pass

        async def bad_name(ctx):
            async with ctx.step("a b"):
                pass

        async def ok(ctx):
            async with ctx.step("fine"):
                pass
        """})
    steps_by = by_name(r)
    for name, (error, message) in cases.items():
        step = steps_by[name]
        assert (step.outcome, step.error) == (Outcome.FAILED, error), (name, step.error, step.error_message)
        assert message in step.error_message, (name, step.error_message)
        assert "Traceback" not in step.error_message and "\n" not in step.error_message
    assert steps_by["ok"].outcome is Outcome.PASSED and steps_by["ok.fine"].outcome is Outcome.PASSED
    assert r.failed_step == "assert_" and r.error is ErrorClass.ASSERTION
    assert [s for s in steps_by if s.startswith("too_many.")] == [f"too_many.s{i}" for i in range(20)]


async def test_an_import_error_and_a_missing_function_at_run_time_are_results(
        demo: tuple[str, FaultBook], probes: ProbeSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the vetting child accepted may still fail in the agent (its environment differs): a result."""
    scripts = {"moody.py": """\
        import os

        if os.environ.get("QOS_TEST_BREAK_IMPORT"):
            raise RuntimeError("no settings here")
        if not os.environ.get("QOS_TEST_HIDE"):
            async def pay(ctx):
                pass
        """, "hidden.py": """\
        import os

        if not os.environ.get("QOS_TEST_HIDE"):
            async def pay(ctx):
                pass
        """}
    steps = ("- {name: a, script: 'steps/moody.py:pay'}\n"
             "- {name: b, always_run: true, script: 'steps/hidden.py:pay'}\n")
    (tmp_path / "steps").mkdir()
    for name, text in scripts.items():
        (tmp_path / "steps" / name).write_text(textwrap.dedent(text))
    config_path = tmp_path / "journeys.yaml"
    config_path.write_text(f"version: 1\nagent: {{state_dir: {tmp_path / 'state'}}}\njourneys:\n  - name: j\n"
                           f"    steps:\n" + textwrap.indent(steps, "      "))
    config = load_config(config_path, env={})  # vetted while the environment allows both
    monkeypatch.setenv("QOS_TEST_BREAK_IMPORT", "1")
    monkeypatch.setenv("QOS_TEST_HIDE", "1")
    runner = Runner(config, probes=probes)
    r = await runner.run_once(config.journeys[0])
    again = await runner.run_once(config.journeys[0])
    runner.looplag.stop()
    a, b = by_name(r)["a"], by_name(r)["b"]
    assert (a.error, a.error_message) == (ErrorClass.SCRIPT, "script steps/moody.py cannot be imported: "
                                          "RuntimeError: no settings here (steps/moody.py:4)")
    assert (b.error, b.error_message) == (ErrorClass.SCRIPT, "steps/hidden.py has no function 'pay'")
    assert [s.error_message for s in again.steps] == [a.error_message, b.error_message]  # imported once


async def test_a_script_that_awaits_forever_or_ignores_cancellation_is_bounded_by_its_timeout(
        demo: tuple[str, FaultBook], probes: ProbeSet, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    t0 = time.monotonic()
    [r] = await run(tmp_path, demo[0], probes, """\
        - {name: waits, timeout: 500ms, script: "steps/slow.py:waits"}
        - {name: stubborn, timeout: 500ms, always_run: true, script: "steps/slow.py:stubborn"}
        - {name: after, always_run: true, http: {url: "{{ base }}/health"}}
        """, {"slow.py": """\
        import asyncio


        async def waits(ctx):
            async with ctx.step("forever"):
                await asyncio.Event().wait()

        async def stubborn(ctx):
            for _ in range(40):
                try:
                    await asyncio.sleep(0.1)
                except asyncio.CancelledError:
                    pass
        """})
    took = time.monotonic() - t0
    steps = by_name(r)
    assert r.failed_step == "waits.forever" and r.error is ErrorClass.TIMEOUT
    assert steps["waits.forever"].error_message == steps["waits"].error_message == (
        "timed out after 0.5s (waiting at steps/slow.py:6, in sub-step 'forever')")
    assert steps["stubborn"].error is ErrorClass.TIMEOUT
    assert steps["stubborn"].error_message.startswith("timed out after 0.5s (waiting at steps/slow.py:")
    assert steps["after"].outcome is Outcome.PASSED
    assert took < 5, took  # 0.5 s each, plus at most a second's grace for the one that ignored it
    assert "script steps/slow.py ignored its cancellation" in caplog.text


async def test_a_script_that_blocks_the_event_loop_is_lagged_and_named_in_a_warning(
        demo: tuple[str, FaultBook], probes: ProbeSet, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    [r] = await run(tmp_path, demo[0], probes, "- {name: stalls, script: 'steps/block.py:stalls'}\n", {"block.py": """\
        import asyncio
        import time


        async def stalls(ctx):
            await asyncio.sleep(0)
            time.sleep(0.4)  # blocking: the whole agent waits
            await asyncio.sleep(0)
        """})
    step = by_name(r)["stalls"]
    assert step.outcome is Outcome.PASSED and step.lagged and r.lagged
    assert step.metrics["blocked_ms"] >= 350
    assert ("journey j, step stalls: the script held the event loop for" in caplog.text
            and "(steps/block.py between lines 6 and 8)" in caplog.text)


async def test_secrets_and_sub_steps_are_masked_and_the_agent_headers_sent(
        demo: tuple[str, FaultBook], probes: ProbeSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QOS_TEST_SHOP_KEY", "k3y-9f8e7d")
    demo[1].add_spec("path=/api/invoices,region=eu-west,status=503")  # only a caller that says its region
    try:
        [r] = await run(tmp_path, demo[0], probes, "- {name: s, script: 'steps/sec.py:s'}\n", {"sec.py": """\
            async def s(ctx):
                key = ctx.secret("QOS_TEST_SHOP_KEY")
                async with ctx.step("region"):
                    response = await ctx.http.get(ctx.vars["base"] + "/api/invoices")
                    assert response.status == 503, response.status
                async with ctx.step(key):
                    pass
                async with ctx.step("leak"):
                    raise ValueError("the key is " + key)
            """})
    finally:
        demo[1].clear()
    steps = by_name(r)
    assert steps["s.region"].outcome is Outcome.PASSED  # X-QoS-Region: eu-west was sent
    assert steps["s.leak"].error_message == "ValueError: the key is *** (at steps/sec.py:9)"
    assert "s.masked" in steps and not any("k3y" in name for name in steps)  # a sub-step named by a secret
    assert "k3y-9f8e7d" not in steps["s"].error_message and "***" in steps["s"].error_message


async def test_the_sample_scripted_checkout_passes(demo: tuple[str, FaultBook], probes: ProbeSet) -> None:
    config = load_config(ROOT / "journeys.yaml", env={"SHOP_URL": demo[0]})
    journey = config.journey("scripted_checkout")
    assert journey is not None
    runner = Runner(config, probes=probes)
    r = await runner.run_once(journey)
    runner.looplag.stop()
    assert r.outcome is Outcome.PASSED, r.error_message
    assert [s.step for s in r.steps] == ["login", "checkout.cart", "checkout.open", "checkout.consent", "checkout.pick",
                                         "checkout.card", "checkout.pay", "checkout", "receipt"]


async def test_the_module_is_imported_once_per_agent_and_content(demo: tuple[str, FaultBook], probes: ProbeSet,
                                                                 tmp_path: Path) -> None:
    counter = tmp_path / "imports.txt"
    script = f"from pathlib import Path\nwith Path({str(counter)!r}).open('a') as f:\n    f.write('x')\n\n\n" \
             "async def s(ctx):\n    pass\n"
    results = await run(tmp_path, demo[0], probes, "- {name: s, script: 'steps/count.py:s'}\n",
                        {"count.py": script}, runs=3)
    assert all(r.outcome is Outcome.PASSED for r in results)
    assert counter.read_text() == "xx"  # once in the vetting child, once in the agent: not per run
