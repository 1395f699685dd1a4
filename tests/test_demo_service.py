"""The demo SaaS: every endpoint, auth, each fault knob, the admin endpoint and the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

from qos_agent.config.loader import load_config
from qos_agent.demo import REGION_HEADER, FaultBook, FaultRule, parse_fault_spec
from qos_agent.runloop.runner import Runner
from tests.support import demo as demo_support
from tests.support.demo import ROOT, DemoProcess, DemoService

demo_service = demo_support.demo_service
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies set by an IP-address host (127.0.0.1); redirects are checked by hand.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def login(http: aiohttp.ClientSession, url: str) -> str:
    async with http.post(url + "/api/login", json={"user": "demo", "password": "demo"}) as r:
        assert r.status == 200
        token: str = (await r.json())["token"]
        return token


# --- endpoints -------------------------------------------------------------------------------------


async def test_health(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    async with http.get(demo_service.url + "/health") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok"}


async def test_signup_and_onboarding(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    url = demo_service.url
    async with http.post(url + "/api/signup", json={"email": "a@example.com", "password": "pw"}) as r:
        assert r.status == 201
        user_id = (await r.json())["user_id"]
    async with http.post(url + "/api/signup", json={"email": "a@example.com", "password": "pw"}) as r:
        assert r.status == 409
    async with http.post(url + "/api/signup", json={"email": "nope", "password": "pw"}) as r:
        assert r.status == 400
        assert "email" in (await r.json())["error"]
    async with http.post(url + "/api/signup", data=b"{not json") as r:
        assert r.status == 400
    async with http.post(f"{url}/api/onboarding/{user_id}/complete") as r:
        assert r.status == 200
        assert await r.json() == {"user_id": user_id, "onboarded": True}
    async with http.post(url + "/api/onboarding/unknown/complete") as r:
        assert r.status == 404
    # A signed-up customer can sign in.
    async with http.post(url + "/api/login", json={"user": "a@example.com", "password": "pw"}) as r:
        assert r.status == 200


async def test_login_token_cookie_and_logout(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    url = demo_service.url
    async with http.post(url + "/api/login", json={"user": "demo", "password": "wrong"}) as r:
        assert r.status == 401
    async with http.post(url + "/api/login", json={"user": "demo"}) as r:
        assert r.status == 400
    async with http.get(url + "/api/invoices") as r:
        assert r.status == 401
    async with http.post(url + "/api/login", json={"user": "demo", "password": "demo"}) as r:
        assert r.status == 200
        assert "json" in r.headers["Content-Type"]
        token = (await r.json())["token"]
        assert r.cookies["session"].value == token
    # The cookie jar now carries the session: invoices answer without a header.
    async with http.get(url + "/api/invoices") as r:
        assert r.status == 200
    async with aiohttp.ClientSession() as fresh:
        auth = {"Authorization": f"Bearer {token}"}
        async with fresh.get(url + "/api/invoices", headers=auth) as r:
            assert r.status == 200
        async with fresh.get(url + "/api/invoices", headers={"Authorization": "Bearer forged"}) as r:
            assert r.status == 401
        async with fresh.post(url + "/api/logout", headers=auth) as r:
            assert r.status == 200
        async with fresh.get(url + "/api/invoices", headers=auth) as r:
            assert r.status == 401


async def test_invoices(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    auth = {"Authorization": "Bearer " + await login(http, demo_service.url)}
    async with http.get(demo_service.url + "/api/invoices", headers=auth) as r:
        invoices = await r.json()
    assert isinstance(invoices, list) and invoices
    first = invoices[0]["id"]
    async with http.get(f"{demo_service.url}/api/invoices/{first}", headers=auth) as r:
        assert r.status == 200
        assert (await r.json())["id"] == first
    async with http.get(demo_service.url + "/api/invoices/inv-0", headers=auth) as r:
        assert r.status == 404


async def test_tickets(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    async with http.post(demo_service.url + "/api/tickets", json={"subject": "help"}) as r:
        assert r.status == 201
        ticket = await r.json()
    assert ticket["status"] == "open" and ticket["id"]
    async with http.get(f"{demo_service.url}/api/tickets/{ticket['id']}") as r:
        assert await r.json() == ticket
    async with http.get(demo_service.url + "/api/tickets/T-missing") as r:
        assert r.status == 404
    async with http.post(demo_service.url + "/api/tickets", json=["not", "an", "object"]) as r:
        assert r.status == 400


async def test_cart_and_pay(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    url = demo_service.url
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url + "/api/cart/c1") as r:
        assert r.status == 401
    auth = {"Authorization": "Bearer " + await login(http, url)}
    async with http.get(url + "/api/cart/c1", headers=auth) as r:
        cart = await r.json()
    assert cart["id"] == "c1" and cart["items"]
    assert cart["total"] == pytest.approx(sum(i["qty"] * i["price"] for i in cart["items"]))
    async with http.post(url + "/api/pay", json={"cart_id": "c1", "card": "4242 4242 4242 4242"}) as r:
        assert r.status == 200
        paid = await r.json()
    assert paid["status"] == "paid" and paid["order_id"]
    async with http.post(url + "/api/pay", json={"cart_id": "c1", "card": "12"}) as r:
        assert r.status == 400
    async with http.post(url + "/api/pay", json={"cart_id": "c1", "card": "4000 0000 0000 0002"}) as r:
        assert r.status == 402


async def test_browser_pages(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    url = demo_service.url
    async with http.get(url + "/dashboard", allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/login"
    async with http.get(url + "/login") as r:
        page = await r.text()
    assert 'id="user"' in page and 'id="password"' in page and ">Sign in</button>" in page
    async with http.post(url + "/login", data={"user": "demo", "password": "bad"}) as r:
        assert r.status == 401
        assert "Invalid user or password" in await r.text()
    form = {"user": "demo", "password": "demo"}
    async with http.post(url + "/login", data=form, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/dashboard"
        assert "session" in r.cookies
    async with http.get(url + "/dashboard") as r:
        assert "Welcome, demo" in await r.text()
    async with http.get(url + "/checkout?cart=<x>") as r:
        page = await r.text()
    assert 'id="card"' in page and "disabled>Pay</button>" in page and 'class="status"' in page
    assert '<script src="/static/app.js"' in page and "&lt;x&gt;" in page and "<x>" not in page
    async with http.get(url + "/static/app.js") as r:
        assert r.status == 200 and "javascript" in r.headers["Content-Type"]
        bundle = await r.text()
    assert "button.disabled = false" in bundle and '"/api/pay"' in bundle and '"Paid"' in bundle
    async with http.get(url + "/static/style.css") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/css")


async def test_delay_and_fast(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    start = time.perf_counter()
    async with http.get(demo_service.url + "/delay?ms=120") as r:
        assert r.status == 200
        await r.read()
    assert 0.12 <= time.perf_counter() - start < 1.0
    async with http.get(demo_service.url + "/delay?ms=soon") as r:
        assert r.status == 400
    async with http.get(demo_service.url + "/delay?ms=-5") as r:
        assert r.status == 400
    async with http.get(demo_service.url + "/fast") as r:
        assert await r.text() == "ok\n"


# --- faults ----------------------------------------------------------------------------------------


async def timed_get(http: aiohttp.ClientSession, url: str, region: str | None = None) -> tuple[int, float]:
    headers = {REGION_HEADER: region} if region else {}
    start = time.perf_counter()
    async with http.get(url, headers=headers) as r:
        await r.read()
        return r.status, time.perf_counter() - start


async def test_latency_fault(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    demo_service.faults.add_spec("path=/fast,latency=150ms")
    status, elapsed = await timed_get(http, demo_service.url + "/fast")
    assert status == 200 and 0.15 <= elapsed < 1.0
    status, elapsed = await timed_get(http, demo_service.url + "/delay?ms=0")
    assert status == 200 and elapsed < 0.15


async def test_status_fault_scoped_to_path(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    demo_service.faults.add(FaultRule(path="/api/pay", status=503))
    pay = {"cart_id": "c", "card": "4242424242424242"}
    async with http.post(demo_service.url + "/api/pay", json=pay) as r:
        assert r.status == 503
        assert r.headers["X-QoS-Fault"] == "injected"
        assert (await r.json())["error"] == "injected fault"
    async with http.post(demo_service.url + "/api/tickets", json={}) as r:
        assert r.status == 201


async def test_glob_paths_spare_health_and_admin(
    demo_service: DemoService, http: aiohttp.ClientSession
) -> None:
    demo_service.faults.add_spec("path=/api/*,status=500")
    demo_service.faults.add_spec("path=*,latency=0,status=502")
    assert (await timed_get(http, demo_service.url + "/api/tickets/x"))[0] == 500
    assert (await timed_get(http, demo_service.url + "/fast"))[0] == 502
    assert (await timed_get(http, demo_service.url + "/health"))[0] == 200
    assert (await timed_get(http, demo_service.url + "/admin/faults"))[0] == 200
    # Naming /health explicitly reaches it.
    demo_service.faults.add_spec("path=/health,status=503")
    assert (await timed_get(http, demo_service.url + "/health"))[0] == 503


def test_path_matching_rules() -> None:
    rule = FaultRule(path="/api/pay", status=503)
    assert rule.matches("/api/pay", None) and rule.matches("/api/pay/3", None)
    assert not rule.matches("/api/payments", None) and not rule.matches("/api", None)
    glob = FaultRule(path="/api/*/complete", latency_ms=1)
    assert glob.matches("/api/onboarding/u1/complete", None) and not glob.matches("/api/login", None)
    assert not FaultRule(path="/", status=500).matches("/health", None)


async def test_region_scoped_fault(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    demo_service.faults.add_spec("path=/fast,region=ap-south,status=503")
    assert (await timed_get(http, demo_service.url + "/fast", "ap-south"))[0] == 503
    assert (await timed_get(http, demo_service.url + "/fast", "AP-South"))[0] == 503
    assert (await timed_get(http, demo_service.url + "/fast", "eu-west"))[0] == 200
    assert (await timed_get(http, demo_service.url + "/fast"))[0] == 200
    demo_service.faults.add_spec("path=/fast,region=us-*,latency=100")
    assert (await timed_get(http, demo_service.url + "/fast", "us-east"))[1] >= 0.1


async def test_error_ratio_over_http(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    demo_service.faults.add_spec("path=/fast,error_ratio=0.3")
    statuses = [(await timed_get(http, demo_service.url + "/fast"))[0] for _ in range(300)]
    assert set(statuses) == {200, 503}
    share = statuses.count(503) / len(statuses)
    assert 0.2 <= share <= 0.4  # 0.3 ± 3.8 standard deviations, and the RNG is seeded


def test_error_ratio_statistics() -> None:
    book = FaultBook([parse_fault_spec("path=/x,error_ratio=5%,status=429")], seed=7)
    decisions = [book.decide("/x", None).status for _ in range(20_000)]
    assert set(decisions) == {None, 429}
    assert 0.04 <= decisions.count(429) / len(decisions) <= 0.06
    again = FaultBook([parse_fault_spec("path=/x,error_ratio=5%,status=429")], seed=7)
    assert [again.decide("/x", None).status for _ in range(20_000)] == decisions


async def test_latency_and_status_together(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    demo_service.faults.add_spec("path=/fast,latency=100,status=504")
    status, elapsed = await timed_get(http, demo_service.url + "/fast")
    assert status == 504 and elapsed >= 0.1


async def test_break_bundle(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    demo_service.faults.add_spec("path=/static/app.js,region=eu-west,break_bundle=true")
    headers = {REGION_HEADER: "eu-west"}
    async with http.get(demo_service.url + "/static/app.js", headers=headers) as r:
        assert r.status == 200 and (await r.text()).startswith("throw ")
    async with http.get(demo_service.url + "/checkout", headers=headers) as r:
        assert r.status == 200 and "disabled>Pay</button>" in await r.text()
    async with http.get(demo_service.url + "/static/app.js", headers={REGION_HEADER: "us-east"}) as r:
        assert "button.disabled = false" in await r.text()


# --- admin endpoint --------------------------------------------------------------------------------


async def test_admin_endpoint(demo_service: DemoService, http: aiohttp.ClientSession) -> None:
    admin = demo_service.url + "/admin/faults"
    async with http.get(admin) as r:
        assert await r.json() == {"faults": []}
    async with http.post(admin, json={"path": "/api/pay", "region": "ap-south", "status": 503}) as r:
        assert r.status == 201
        (created,) = (await r.json())["faults"]
    assert created == {"id": 1, "path": "/api/pay", "region": "ap-south", "status": 503}
    async with http.post(admin, json=["path=/fast,latency=2s", {"error_ratio": 0.5}]) as r:
        assert r.status == 201
        assert [f["id"] for f in (await r.json())["faults"]] == [2, 3]
    assert demo_service.faults.rules()[1][1].latency_ms == 2000
    # One bad rule: 400 naming the problem, and nothing of the batch is added.
    async with http.post(admin, json=[{"path": "/x", "status": 503}, {"path": "/y", "colour": "red"}]) as r:
        assert r.status == 400
        assert "unknown fault key 'colour'" in (await r.json())["error"]
    async with http.post(admin, data=b"][") as r:
        assert r.status == 400
    async with http.get(admin) as r:
        assert [f["id"] for f in (await r.json())["faults"]] == [1, 2, 3]
    async with http.delete(admin + "/2") as r:
        assert await r.json() == {"removed": 2}
    async with http.delete(admin + "/2") as r:
        assert r.status == 404
    async with http.delete(admin) as r:
        assert await r.json() == {"cleared": 2}
    assert len(demo_service.faults) == 0


# --- fault specs and the command line --------------------------------------------------------------


def test_parse_fault_spec() -> None:
    rule = parse_fault_spec("path=/api/pay, region=ap-south, status=503")
    assert rule == FaultRule(path="/api/pay", region="ap-south", status=503)
    assert parse_fault_spec("latency=2s").latency_ms == 2000
    assert parse_fault_spec("latency=250").latency_ms == 250
    assert parse_fault_spec("error_ratio=30%").error_ratio == pytest.approx(0.3)
    assert parse_fault_spec("break_bundle=yes").break_bundle


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty fault spec"),
        ("path", "is not key=value"),
        ("colour=red", "unknown fault key 'colour'"),
        ("status=abc", "not an HTTP status code"),
        ("status=200", "must be an error status"),
        ("error_ratio=2", "between 0 and 1"),
        ("latency=fast", "not milliseconds or a duration"),
        ("status=503,status=500", "given twice"),
        ("path=/api/pay", "needs at least one of"),
        ("path=api,status=503", "must start with '/'"),
        ("break_bundle=maybe", "must be true or false"),
    ],
)
def test_bad_fault_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault_spec(spec)


def test_cli_serves_with_faults_and_stops_on_sigterm() -> None:
    with DemoProcess("path=/api/pay,status=503") as demo:
        assert demo.url == f"http://127.0.0.1:{demo.port}" and demo.port > 0
        assert demo.list_faults() == [{"id": 1, "path": "/api/pay", "region": "*", "status": 503}]
        demo.add_faults(["path=/fast,latency=5"])
        assert len(demo.list_faults()) == 2
        demo.clear_faults()
        assert demo.list_faults() == []
    assert demo.last_returncode == 0
    assert "Traceback" not in demo.last_stderr


def test_cli_rejects_bad_fault_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qos_agent.demo", "--port", "0", "--fault", "status=abc"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert "error: fault spec 'status=abc'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_port_in_use() -> None:
    with DemoProcess() as first:
        proc = subprocess.run(
            [sys.executable, "-m", "qos_agent.demo", "--port", str(first.port)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port}" in proc.stderr and "Traceback" not in proc.stderr


# --- the sample journeys.yaml runs against the demo, through the real runner --------------------


async def run_sample(url: str, name: str, region: str) -> tuple[str, str]:
    """(outcome, failed step) of one sample journey run by the agent's own Runner."""
    config = load_config(ROOT / "journeys.yaml", env={"SHOP_URL": url}, region=region)
    journey = config.journey(name)
    assert journey is not None
    runner = Runner(config)
    try:
        result = await runner.run_once(journey)
    finally:
        await runner.close()
    return str(result.outcome), result.failed_step


async def test_sample_http_journeys_pass_against_the_demo(demo_service: DemoService) -> None:
    config = load_config(ROOT / "journeys.yaml", env={"SHOP_URL": demo_service.url})
    http_only = [j.name for j in config.journeys if all(s.kind == "http" for s in j.steps)]
    assert http_only == ["onboarding", "billing", "support", "checkout", "uptime"]
    for name in http_only:
        assert await run_sample(demo_service.url, name, "local") == ("passed", ""), name


async def test_sample_certificate_journey_checks_the_demo_https_side(demo_service: DemoService) -> None:
    assert await run_sample(demo_service.url, "certificate", "local") == ("passed", "")


async def test_sample_checkout_breaks_in_one_region_while_uptime_stays_green(
    demo_service: DemoService,
) -> None:
    demo_service.faults.add_spec("path=/api/pay,region=ap-south,status=503")
    assert await run_sample(demo_service.url, "checkout", "ap-south") == ("failed", "pay")
    assert await run_sample(demo_service.url, "checkout", "eu-west") == ("passed", "")
    assert await run_sample(demo_service.url, "uptime", "ap-south") == ("passed", "")


# --- the browser pages in real headless Chromium ---------------------------------------------------


@pytest.mark.browser
async def test_browser_login_checkout_and_broken_bundle(demo_service: DemoService) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM)
        try:
            context = await browser.new_context(extra_http_headers={REGION_HEADER: "eu-west"})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(demo_service.url + "/login")
            await page.fill("#user", "demo")
            await page.fill("#password", "demo")
            await page.click("text=Sign in")
            await page.wait_for_url("**/dashboard", timeout=5000)
            assert "Welcome, demo" in (await page.text_content("h1") or "")

            await page.goto(demo_service.url + "/checkout")
            await page.fill("#card", "4242 4242 4242 4242")
            await page.click("text=Pay", timeout=5000)
            await page.wait_for_selector(".status:text-is('Paid')", timeout=5000)
            assert (await page.text_content("#order") or "").startswith("o-")
            assert errors == []

            # The bundle breaks for this region: the page still answers 200, but Pay never enables.
            demo_service.faults.add_spec("path=/static/*,region=eu-west,break_bundle=true")
            response = await page.goto(demo_service.url + "/checkout")
            assert response is not None and response.status == 200
            with pytest.raises(PlaywrightTimeout):
                await page.click("text=Pay", timeout=500)
            assert await page.is_disabled("#pay")
            assert any("broken bundle" in e for e in errors)
            await context.close()
        finally:
            await browser.close()
