"""The demo's browser pages (login, dashboard, checkout), its static bundle, and benchmark targets."""

from __future__ import annotations

import asyncio
import html
from importlib import resources

from aiohttp import web

from qos_agent.demo import api
from qos_agent.demo.faults import REGION_HEADER

# What `/static/app.js` serves under the `break_bundle` fault: still 200, but it throws, so the
# Pay button never enables while every page answers 200.
BROKEN_BUNDLE = b'throw new Error("demo fault: broken bundle");\n'
MAX_DELAY_MS = 60_000
_HTML = "text/html"


def _asset(name: str) -> str:
    return resources.files("qos_agent.demo").joinpath("static", name).read_text(encoding="utf-8")


class Assets:
    """Pages and bundle read once, at app creation: serving them costs no file I/O."""

    def __init__(self) -> None:
        self.login = _asset("login.html")
        self.dashboard = _asset("dashboard.html")
        self.checkout = _asset("checkout.html")
        self.checkout_hosted = _asset("checkout-hosted.html")  # the card field in a provider's iframe
        self.card_frame = _asset("card-frame.html")
        self.app_js = _asset("app.js").encode()
        self.style_css = _asset("style.css").encode()


ASSETS = web.AppKey("demo_assets", Assets)


def _page(template: str, status: int = 200, **values: str) -> web.Response:
    for key, value in values.items():
        template = template.replace("{" + key + "}", html.escape(value))
    return web.Response(text=template, status=status, content_type=_HTML)


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def index(request: web.Request) -> web.Response:
    return _redirect("/login")


async def login_page(request: web.Request) -> web.Response:
    return _page(request.app[ASSETS].login, error="")


async def login_form(request: web.Request) -> web.Response:
    """The form post: a session cookie and a redirect to the dashboard, or the form again with 401."""
    form = await request.post()
    user, password = form.get("user"), form.get("password")
    state = request.app[api.STATE]
    if not (isinstance(user, str) and isinstance(password, str) and state.check_password(user, password)):
        return _page(request.app[ASSETS].login, status=401, error="Invalid user or password.")
    response = _redirect("/dashboard")
    api.set_session_cookie(response, state.open_session(user))
    return response


async def dashboard(request: web.Request) -> web.Response:
    user = request.app[api.STATE].user_of(request)
    if user is None:
        return _redirect("/login")
    return _page(request.app[ASSETS].dashboard, user=user)


async def checkout(request: web.Request) -> web.Response:
    return _page(request.app[ASSETS].checkout, cart=request.query.get("cart", "demo-cart"))


async def checkout_hosted(request: web.Request) -> web.Response:
    """Checkout with a cookie banner, products to pick from and the card field in an iframe (script steps)."""
    return _page(request.app[ASSETS].checkout_hosted, cart=request.query.get("cart", "demo-cart"))


async def card_frame(request: web.Request) -> web.Response:
    return _page(request.app[ASSETS].card_frame)


async def app_js(request: web.Request) -> web.Response:
    broken = request.app[api.FAULTS].breaks_bundle(request.path, request.headers.get(REGION_HEADER))
    body = BROKEN_BUNDLE if broken else request.app[ASSETS].app_js
    return web.Response(
        body=body, content_type="application/javascript", headers={"Cache-Control": "no-store"}
    )


async def style_css(request: web.Request) -> web.Response:
    return web.Response(body=request.app[ASSETS].style_css, content_type="text/css")


async def delay(request: web.Request) -> web.Response:
    """Answers after `ms` milliseconds: the benchmarks' target of known latency."""
    raw = request.query.get("ms", "0")
    try:
        ms = int(raw)
    except ValueError:
        return api.error(400, f"ms must be an integer number of milliseconds, not {raw!r}")
    if not 0 <= ms <= MAX_DELAY_MS:
        return api.error(400, f"ms must be between 0 and {MAX_DELAY_MS}")
    if ms:
        await asyncio.sleep(ms / 1000)
    return web.Response(text=f"delayed {ms} ms\n")


async def fast(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def add_routes(app: web.Application) -> None:
    app[ASSETS] = Assets()
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_form)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/checkout", checkout)
    app.router.add_get("/checkout/hosted", checkout_hosted)
    app.router.add_get("/checkout/card-frame", card_frame)
    app.router.add_get("/static/app.js", app_js)
    app.router.add_get("/static/style.css", style_css)
    app.router.add_get("/delay", delay)
    app.router.add_get("/fast", fast)
