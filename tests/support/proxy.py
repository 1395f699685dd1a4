"""A small forward proxy on 127.0.0.1: CONNECT tunnels (https) and absolute-form requests (http).

It records the first line of every request it got, so a test can tell that traffic went through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from yarl import URL


@dataclass
class Proxy:
    port: int = 0
    seen: list[str] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)  # names only the proxy can resolve

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


@asynccontextmanager
async def forward_proxy(hosts: dict[str, str] | None = None) -> AsyncIterator[Proxy]:
    proxy = Proxy(hosts=dict(hosts or {}))
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        first = head.split(b"\r\n", 1)[0].decode("latin-1")
        proxy.seen.append(first)
        method, target, _ = first.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_r, up_w = await asyncio.open_connection(proxy.hosts.get(host, host), int(port))
            writers.append(up_w)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            url = URL(target)
            up_r, up_w = await asyncio.open_connection(proxy.hosts.get(url.host or "", url.host), url.port)
            writers.append(up_w)
            up_w.write(head)
            await up_w.drain()
        await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))

    def spawn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(handle(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(spawn, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in writers:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
