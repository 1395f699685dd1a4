"""A hostile HTTP server on 127.0.0.1 (raw asyncio, in a thread): answers no well-behaved server gives.

    with HostileServer(big_mb=64) as srv:   # srv.url -> "http://127.0.0.1:PORT"
        GET /deep-json   200, JSON nested 100,000 levels deep
        GET /garbage     a status line of control bytes, an escape sequence and 12,000 characters
        GET /reset       Content-Length 100000, 1000 bytes, then a TCP reset
        GET /big         after `big_delay_s`, a body of `big_mb` MiB
        GET /stall       headers never come
        anything else    200 {"ok": true}
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from types import TracebackType


class HostileServer:
    def __init__(self, big_mb: int = 64, big_delay_s: float = 3.0) -> None:
        self.big = big_mb * 2**20
        self.big_delay_s = big_delay_s
        self.url = ""
        self.hits: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = head.split(b" ", 2)[1].decode("latin-1")
            self.hits[path] = self.hits.get(path, 0) + 1
            await self._answer(path, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, IndexError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> None:
        if path == "/deep-json":
            body = b"[" * 100_000 + b"]" * 100_000
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)
        elif path == "/garbage":
            writer.write(b"HTTP/1.1 2\x00\xff\x1b[31m" + b"A" * 12_000 + b"\r\n\r\n")
        elif path == "/reset":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
            writer.transport.abort()
            return
        elif path == "/big":
            await asyncio.sleep(self.big_delay_s)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % self.big)
            block = b"x" * 2**20
            for _ in range(self.big // len(block)):
                writer.write(block)
                await writer.drain()
        elif path == "/stall":
            await asyncio.sleep(30)
            return
        else:
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n'
                         b'Connection: close\r\n\r\n{"ok": true}')
        await writer.drain()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        assert self._server is not None
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._server.wait_closed(), 2)
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
