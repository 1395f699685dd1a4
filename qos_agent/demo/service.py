"""The demo SaaS as one aiohttp app: routes, the fault middleware, the admin endpoint, start and serve.

It is the target of the tests, the benchmarks and the sample `journeys.yaml`. It listens on
127.0.0.1 unless told otherwise, and keeps every request cheap (benchmarks drive `/delay` at
1,000 requests per second), so the fault middleware does nothing when no rule is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from qos_agent.demo import api, pages, tls
from qos_agent.demo.faults import REGION_HEADER, FaultBook, FaultRule, parse_fault_spec, rule_from_mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Delay or fail the request as the fault rules for its path and its caller's region say."""
    book = request.app[api.FAULTS]
    if not len(book):
        return await handler(request)
    decision = book.decide(request.path, request.headers.get(REGION_HEADER))
    if decision.latency_ms:
        await asyncio.sleep(decision.latency_ms / 1000)
    if decision.status is not None:
        return web.json_response(
            {"error": "injected fault", "status": decision.status, "path": request.path},
            status=decision.status,
            headers={"X-QoS-Fault": "injected"},
        )
    return await handler(request)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app[api.FAULTS].to_json()})


async def add_faults(request: web.Request) -> web.Response:
    """Add one rule or a list; each is a JSON object of rule keys or a `--fault` spec string.

    Either every rule is valid and all are added, or none is (400 with the reason).
    """
    try:
        body: Any = await request.json()
    except ValueError:
        return api.error(400, "expected JSON: a fault object, a fault spec string, or a list of them")
    items = body if isinstance(body, list) else [body]
    try:
        rules = [_rule(item) for item in items]
    except ValueError as exc:
        return api.error(400, str(exc))
    book = request.app[api.FAULTS]
    ids = [book.add(rule) for rule in rules]
    created = [{"id": rule_id, **rule.to_json()} for rule_id, rule in zip(ids, rules, strict=True)]
    return web.json_response({"faults": created}, status=201)


def _rule(item: object) -> FaultRule:
    if isinstance(item, str):
        return parse_fault_spec(item)
    if isinstance(item, dict):
        return rule_from_mapping(item)
    raise ValueError(f"a fault must be an object or a spec string, not {json.dumps(item)}")


async def clear_faults(request: web.Request) -> web.Response:
    return web.json_response({"cleared": request.app[api.FAULTS].clear()})


async def remove_fault(request: web.Request) -> web.Response:
    raw = request.match_info["rule_id"]
    if not raw.isdigit() or not request.app[api.FAULTS].remove(int(raw)):
        return api.error(404, f"no fault with id {raw}")
    return web.json_response({"removed": int(raw)})


def make_app(faults: FaultBook | None = None) -> web.Application:
    """The demo app; `faults` is shared with the caller, so tests can change it while it serves."""
    app = web.Application(middlewares=[fault_middleware])
    app[api.FAULTS] = faults if faults is not None else FaultBook()
    api.add_routes(app)
    pages.add_routes(app)
    tls.add_routes(app)
    app.router.add_get("/admin/faults", list_faults)
    app.router.add_post("/admin/faults", add_faults)
    app.router.add_delete("/admin/faults", clear_faults)
    app.router.add_delete("/admin/faults/{rule_id}", remove_fault)
    return app


async def start_demo(
    host: str = DEFAULT_HOST, port: int = 0, faults: FaultBook | None = None, https: bool = True
) -> tuple[web.AppRunner, str]:
    """Start listening; returns the runner (call `cleanup()` to stop) and the base URL.

    With `https`, the same app is served over TLS on a second, free port (see demo/tls.py).

    Port 0 picks a free port; the URL names the real one. Raises OSError if it cannot listen.
    """
    runner = web.AppRunner(make_app(faults), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        if https:
            await tls.start_https(runner, host)
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound_port}"


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, fault_specs: list[str] | None = None) -> None:
    """Run the demo until SIGTERM or SIGINT, after printing `demo service on URL`.

    Raises ValueError for a bad fault spec (before listening) and OSError if it cannot listen.
    """
    book = FaultBook(parse_fault_spec(spec) for spec in fault_specs or [])
    asyncio.run(_serve(host, port, book))


async def _serve(host: str, port: int, book: FaultBook) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on some platforms
            loop.add_signal_handler(signum, stop.set)
    runner, url = await start_demo(host, port, book)
    try:
        print(f"demo service on {url}", flush=True)
        if (https := runner.app[tls.TLS_INFO].get("url")) is not None:
            print(f"demo https on {https} (self-signed, {tls.DAYS} days)", flush=True)
        for rule_id, rule in book.rules():
            print(f"fault {rule_id}: {json.dumps(rule.to_json())}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
