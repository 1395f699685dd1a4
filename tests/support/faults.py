"""Real servers on 127.0.0.1 that fail in every way a probe must classify.

- `http_server(tls=...)`: an aiohttp app with good routes and faulty ones (status codes, slow
  answers, cookies, a redirect loop, an endless body); it records each request it gets.
- `self_signed`: a trustme CA and certificate for localhost / 127.0.0.1 (the CA is in no trust store).
- `closed_port()`: a port nobody listens on (bound, then closed).
- `silent_server()`: accepts TCP connections and never answers.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiohttp import web
from multidict import CIMultiDict

BODY = {
    "token": "abc123",
    "count": 7,
    "name": "bob",
    "user_id": 42,
    "items": [{"id": 1}, {"id": 2}],
    "tags": ["a", "b"],
    "empty": None,
}
STREAM_CHUNK = b"x" * 16384
STREAM_MAX_CHUNKS = 4096  # 64 MiB: the "endless" body still ends if nobody stops reading


@dataclass
class Server:
    base: str  # scheme://host:port, host as given to http_server
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)  # path, headers (CIMultiDict), query

    def url(self, path: str) -> str:
        return self.base + path


async def _ok(request: web.Request) -> web.Response:
    return web.json_response(BODY, headers={"X-Trace": "t-42"})


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status page")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.query.get("ms", "100")) / 1000)
    return web.Response(text="slow but fine")


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "body": await request.text(),
        "content_type": request.content_type,
    })


async def _html(request: web.Request) -> web.Response:
    return web.Response(text='<form><input name="csrf" value="tok-9f8e"></form>', content_type="text/html")


async def _cookie(request: web.Request) -> web.Response:
    resp = web.json_response({"ok": True})
    resp.set_cookie("session", "sess-77", path="/")
    return resp


async def _loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


async def _redirect(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    if n <= 0:
        return web.Response(text="arrived")
    raise web.HTTPFound(f"/redirect/{n - 1}")


async def _stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(request)
    with suppress(ConnectionError):
        for _ in range(STREAM_MAX_CHUNKS):
            await resp.write(STREAM_CHUNK)
    return resp


def _app(server: Server) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        server.requests.append({"path": request.path, "headers": CIMultiDict(request.headers),
                                "query": dict(request.query)})
        result: web.StreamResponse = await handler(request)
        return result

    app = web.Application(middlewares=[record])
    app.add_routes([
        web.get("/ok", _ok),
        web.route("*", "/status/{code}", _status),
        web.get("/slow", _slow),
        web.route("*", "/echo", _echo),
        web.get("/html", _html),
        web.get("/cookie", _cookie),
        web.get("/loop", _loop),
        web.get("/redirect/{n}", _redirect),
        web.get("/stream", _stream),
    ])
    return app


class SelfSigned:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("localhost", "127.0.0.1")

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(ctx)
        return ctx


@asynccontextmanager
async def http_server(host: str = "127.0.0.1", tls: SelfSigned | None = None) -> AsyncIterator[Server]:
    """The fault app on 127.0.0.1; `host` is only how the base URL names it (e.g. localhost)."""
    server = Server(base="", port=0)
    runner = web.AppRunner(_app(server), shutdown_timeout=1, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context() if tls else None)
    await site.start()
    try:
        server.port = runner.addresses[0][1]
        server.base = f"{'https' if tls else 'http'}://{host}:{server.port}"
        yield server
    finally:
        await runner.cleanup()


def closed_port() -> int:
    """A loopback port that refuses connections: bound to find a free one, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never sends a byte; yields its port."""
    writers: list[asyncio.StreamWriter] = []
    done = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await done.wait()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        done.set()
        for w in writers:
            w.close()
            with suppress(ConnectionError):
                await w.wait_closed()
        server.close()
        await server.wait_closed()
