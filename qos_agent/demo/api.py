"""The demo SaaS's JSON API: onboarding, auth, billing, support, checkout.

All state lives in memory, in bounded maps, so a demo that an agent hammers for days stays small.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict
from typing import Any

from aiohttp import web

from qos_agent.demo.faults import FaultBook

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
SESSION_COOKIE = "session"
MAX_ENTRIES = 10_000

INVOICES: list[dict[str, Any]] = [
    {"id": "inv-1001", "amount": 49.0, "currency": "EUR", "status": "paid", "issued": "2024-01-31"},
    {"id": "inv-1002", "amount": 49.0, "currency": "EUR", "status": "paid", "issued": "2024-02-29"},
    {"id": "inv-1003", "amount": 59.0, "currency": "EUR", "status": "open", "issued": "2024-03-31"},
]
CART_ITEMS: list[dict[str, Any]] = [
    {"sku": "tee-blue-m", "name": "T-shirt, blue, M", "qty": 2, "price": 19.5},
    {"sku": "mug-white", "name": "Mug, white", "qty": 1, "price": 9.0},
]
DECLINED_CARDS = {"4000000000000002"}


class Bounded(OrderedDict[str, Any]):
    """A map that forgets its oldest entries beyond `MAX_ENTRIES`."""

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        while len(self) > MAX_ENTRIES:
            self.popitem(last=False)


class DemoState:
    """Users, sessions and tickets of one demo service."""

    def __init__(self) -> None:
        self.users = Bounded()  # email -> {"user_id", "password", "onboarded"}
        self.user_ids = Bounded()  # user_id -> email
        self.sessions = Bounded()  # token -> user name
        self.tickets = Bounded()  # ticket id -> ticket

    def check_password(self, user: str, password: str) -> bool:
        if user == DEMO_USER:
            return secrets.compare_digest(password, DEMO_PASSWORD)
        account = self.users.get(user)
        return account is not None and secrets.compare_digest(password, account["password"])

    def open_session(self, user: str) -> str:
        token = secrets.token_urlsafe(24)
        self.sessions.put(token, user)
        return token

    def user_of(self, request: web.Request) -> str | None:
        """The signed-in user: a bearer token, else the session cookie."""
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return self.sessions.get(auth[7:].strip())
        token = request.cookies.get(SESSION_COOKIE)
        return self.sessions.get(token) if token else None


STATE = web.AppKey("demo_state", DemoState)
FAULTS = web.AppKey("demo_faults", FaultBook)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON body if it is an object, else None (the caller answers 400)."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _state(request: web.Request) -> DemoState:
    return request.app[STATE]


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def signup(request: web.Request) -> web.Response:
    body = await json_object(request)
    if body is None:
        return error(400, "expected a JSON object with email and password")
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or "@" not in email:
        return error(400, "email must be an address such as someone@example.com")
    if not isinstance(password, str) or not password:
        return error(400, "password must be a non-empty string")
    state = _state(request)
    if email in state.users:
        return error(409, "this email is already registered")
    user_id = uuid.uuid4().hex
    state.users.put(email, {"user_id": user_id, "password": password, "onboarded": False})
    state.user_ids.put(user_id, email)
    return web.json_response({"user_id": user_id}, status=201)


async def onboarding_complete(request: web.Request) -> web.Response:
    state = _state(request)
    user_id = request.match_info["user_id"]
    email = state.user_ids.get(user_id)
    if email is None or email not in state.users:
        return error(404, "no such user")
    state.users[email]["onboarded"] = True
    return web.json_response({"user_id": user_id, "onboarded": True})


async def login(request: web.Request) -> web.Response:
    body = await json_object(request)
    if body is None:
        return error(400, "expected a JSON object with user and password")
    user, password = body.get("user"), body.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        return error(400, "user and password must be strings")
    state = _state(request)
    if not state.check_password(user, password):
        return error(401, "invalid user or password")
    token = state.open_session(user)
    response = web.json_response({"token": token, "user": user})
    set_session_cookie(response, token)
    return response


def set_session_cookie(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="Lax")


async def logout(request: web.Request) -> web.Response:
    """Ends the session the request carries, if any; always 200 so a cleanup step never fails."""
    state = _state(request)
    auth = request.headers.get("Authorization", "")
    for token in (auth[7:].strip() if auth[:7].lower() == "bearer " else "",
                  request.cookies.get(SESSION_COOKIE, "")):
        state.sessions.pop(token, None)
    response = web.json_response({"status": "logged out"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _signed_in(request: web.Request) -> str | None:
    return _state(request).user_of(request)


async def invoices(request: web.Request) -> web.Response:
    if _signed_in(request) is None:
        return error(401, "sign in first (Authorization: Bearer <token> or the session cookie)")
    return web.json_response(INVOICES)


async def invoice(request: web.Request) -> web.Response:
    if _signed_in(request) is None:
        return error(401, "sign in first (Authorization: Bearer <token> or the session cookie)")
    wanted = request.match_info["invoice_id"]
    for item in INVOICES:
        if item["id"] == wanted:
            return web.json_response(item)
    return error(404, "no such invoice")


async def create_ticket(request: web.Request) -> web.Response:
    body = await json_object(request)
    if body is None:
        return error(400, "expected a JSON object with a subject")
    subject = body.get("subject", "(no subject)")
    if not isinstance(subject, str):
        return error(400, "subject must be a string")
    ticket_id = "T-" + uuid.uuid4().hex[:12]
    ticket = {
        "id": ticket_id,
        "status": "open",
        "subject": subject,
        "created": int(time.time()),
    }
    _state(request).tickets.put(ticket_id, ticket)
    return web.json_response(ticket, status=201)


async def get_ticket(request: web.Request) -> web.Response:
    ticket = _state(request).tickets.get(request.match_info["ticket_id"])
    if ticket is None:
        return error(404, "no such ticket")
    return web.json_response(ticket)


async def cart(request: web.Request) -> web.Response:
    if _signed_in(request) is None:
        return error(401, "sign in first (Authorization: Bearer <token> or the session cookie)")
    total = round(sum(item["qty"] * item["price"] for item in CART_ITEMS), 2)
    return web.json_response({"id": request.match_info["cart_id"], "items": CART_ITEMS, "total": total})


async def pay(request: web.Request) -> web.Response:
    """Open to anonymous callers, so the browser checkout page works without a prior sign-in."""
    body = await json_object(request)
    if body is None:
        return error(400, "expected a JSON object with cart_id and card")
    cart_id, card = body.get("cart_id"), body.get("card")
    if not isinstance(cart_id, str) or not cart_id:
        return error(400, "cart_id must be a non-empty string")
    digits = card.replace(" ", "").replace("-", "") if isinstance(card, str) else ""
    if not (digits.isdigit() and 12 <= len(digits) <= 19):
        return error(400, "card must be a card number of 12 to 19 digits")
    if digits in DECLINED_CARDS:
        return error(402, "card declined")
    return web.json_response({"status": "paid", "order_id": "o-" + uuid.uuid4().hex[:12], "cart_id": cart_id})


def add_routes(app: web.Application) -> None:
    app[STATE] = DemoState()
    app.router.add_get("/health", health)
    app.router.add_post("/api/signup", signup)
    app.router.add_post("/api/onboarding/{user_id}/complete", onboarding_complete)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/invoices", invoices)
    app.router.add_get("/api/invoices/{invoice_id}", invoice)
    app.router.add_post("/api/tickets", create_ticket)
    app.router.add_get("/api/tickets/{ticket_id}", get_ticket)
    app.router.add_get("/api/cart/{cart_id}", cart)
    app.router.add_post("/api/pay", pay)
