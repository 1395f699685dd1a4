"""Receivers that record every delivery with the agent process that made it, for a real-process test.

A test that restarts the agent many times must tell "sent twice by one process" (a broken promise)
from "sent again by the next process after a `kill -9`" (at least once, allowed). Each receiver
stamps what it accepts with the process that sent it: the driver starts process n with
`QOS_LIFE_PROCESS=n` in its environment and the sinks' configuration carries `${QOS_LIFE_PROCESS}`
in a header (the webhook's `headers:`, InfluxDB's basic-auth user `process-N`), so a request a
process sent as it died is still its own, however late the receiver reads it. Both run on a
`LoopThread`, so the driver can block on subprocesses and HTTP polls without starving them.

- `HookRecorder`: a webhook receiver, `format: json` at `/json` and `format: pagerduty` at `/pd`;
  every event by its record id, (key, status): the json `key`/`status`, PagerDuty's
  `dedup_key`/`event_action`.
- `LineRecorder`: InfluxDB 1.x's `POST /write` (gzip or not); every line by its id, the series and
  the time (InfluxDB's own identity). `down` answers 503 to everything (an outage); `flaky` is the
  share of other requests answered 503 (a part of a batch failing alone).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import random
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class LoopThread:
    """An asyncio loop of its own, in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="recorders", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass(frozen=True, slots=True)
class Receipt:
    """One record accepted: its id, the agent process that sent it (its generation: 1, 2, ...), and
    what it was (`kind`: the webhook's format, or the line's measurement)."""

    id: str
    generation: int
    kind: str
    at: float = field(default_factory=time.monotonic)  # when it was accepted (this process's clock)


PROCESS_HEADER = "X-Life-Process"


def sender(request: web.Request) -> int:
    """The agent process that sent a request: its `X-Life-Process` header, or its basic-auth user
    `process-N` (-1 when it carries neither: a configuration that forgot it)."""
    if request.headers.get(PROCESS_HEADER, "").isdigit():
        return int(request.headers[PROCESS_HEADER])
    user, _ = basic_auth(request)
    return int(user[8:]) if user.startswith("process-") and user[8:].isdigit() else -1


def basic_auth(request: web.Request) -> tuple[str, str]:
    """(user, password) of a basic-auth request; empty strings without one."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Basic "):
        return "", ""
    user, _, password = base64.b64decode(auth[6:]).decode(errors="replace").partition(":")
    return user, password


class _Server:
    """An aiohttp app on 127.0.0.1; stop/start keep the port (an outage, then the same address)."""

    def __init__(self) -> None:
        self.port = 0
        self.receipts: list[Receipt] = []
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def taken(self) -> list[Receipt]:
        return list(self.receipts)  # a copy: the loop thread appends


class HookRecorder(_Server):
    """Webhook events by (key, status); `problems` lists bodies that break the documented format."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def url(self, fmt: str) -> str:
        return f"http://127.0.0.1:{self.port}/{'pd' if fmt == 'pagerduty' else fmt}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/json", self._json)
        app.router.add_post("/pd", self._pagerduty)
        return app

    async def _json(self, request: web.Request) -> web.Response:
        body = await request.json()
        status, key = body.get("status"), body.get("key")
        if status not in ("firing", "resolved") or not key:
            self.problems.append(f"json body without key/status: {body}")
        elif status == "resolved" and body.get("close_reason") not in ("healed", "removed", "restart"):
            self.problems.append(f"json resolve without close_reason: {body}")
        self.receipts.append(Receipt(f"{key} {status}", sender(request), "json"))
        return web.json_response({"ok": True})

    async def _pagerduty(self, request: web.Request) -> web.Response:
        body = await request.json()
        action, key = body.get("event_action"), body.get("dedup_key")
        if action not in ("trigger", "resolve") or not key or not body.get("routing_key"):
            self.problems.append(f"pagerduty event without action/dedup_key/routing_key: {body}")
        status = "firing" if action == "trigger" else "resolved"
        self.receipts.append(Receipt(f"{key} {status}", sender(request), "pagerduty"))
        return web.json_response({"status": "success", "dedup_key": key}, status=202)

    def told(self, fmt: str) -> Counter[tuple[str, str]]:
        """(key, status) -> how many times this format's receiver accepted it."""
        return Counter(tuple(r.id.rsplit(" ", 1)) for r in self.taken() if r.kind == fmt)  # type: ignore[misc]


def line_id(line: str) -> tuple[str, str]:
    """(id, measurement) of a line of line protocol: the series key (up to the first unescaped space)
    and the timestamp (after the last space)."""
    escaped = False
    end = len(line)
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == " ":
            end = i
            break
    series = line[:end]
    measurement = series.split(",", 1)[0]
    return f"{series} {line.rsplit(' ', 1)[-1]}", measurement


class LineRecorder(_Server):
    """InfluxDB 1.x's write endpoint, recording every accepted line by id (repeats included)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.down = False
        self.flaky = 0.0
        self.refused = 0
        self.passwords: set[str] = set()  # what came on the wire (the sink adds it to each request)
        self._rng = random.Random(seed)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/write", self._write)
        return app

    async def _write(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.passwords.add(basic_auth(request)[1])
        if self.down or (self.flaky and self._rng.random() < self.flaky):
            self.refused += 1
            return web.Response(status=503, text="not now")
        if raw[:2] == b"\x1f\x8b":  # still compressed (aiohttp may or may not have inflated it)
            raw = gzip.decompress(raw)
        process = sender(request)
        for line in raw.decode().split("\n"):
            if line.strip():
                ident, measurement = line_id(line)
                self.receipts.append(Receipt(ident, process, measurement))
        return web.Response(status=204)
