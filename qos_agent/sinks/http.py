"""One HTTP POST for the network sinks: a session made on first use, the answer judged by the send policy.

Run time only (it imports aiohttp): a sink's config side never imports this module. Credentials
are passed per request (`headers`), so they live in memory while a batch is sent and nowhere else;
every message this module makes names the destination as `where` says (a webhook: scheme://host/…)
and goes through the sink's `mask`, so an echoed token or path never reaches a log or the dead letter.
Redirects are not followed: a moved URL waits for a human (qos_agent/sinks/policy.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from qos_agent.errors import RetryableError
from qos_agent.sinks.policy import HUMAN_FIX, raise_for


def _same(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str
    headers: dict[str, str]


class Poster:
    """POSTs bodies to one destination; `post` raises the core's RetryableError / PermanentError."""

    def __init__(self, *, where: str, timeout_s: float, verify_tls: bool = True, fix: str = HUMAN_FIX,
                 mask: Callable[[str], str] = _same, connections: int = 4) -> None:
        self.where = where
        self.fix = fix
        self.mask = mask
        self._timeout_s = timeout_s
        self._verify_tls = verify_tls
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                connector=aiohttp.TCPConnector(ssl=self._verify_tls, limit=self._connections))
        return self._session

    async def request(self, url: str, body: bytes | None, headers: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None) -> Answer:
        """The answer, whatever its status; RetryableError when the destination cannot be reached."""
        try:
            async with self._http().post(url, data=body, headers=dict(headers or {}), params=params,
                                         allow_redirects=False) as resp:
                text = await resp.text(errors="replace")
                return Answer(resp.status, self.mask(text), dict(resp.headers))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            why = self.mask(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            raise RetryableError(f"cannot reach {self.where}: {why}") from None

    async def post(self, url: str, body: bytes | None, headers: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None, fix: str | None = None) -> Answer:
        """POST and apply the send policy: returns only when the destination accepted the body."""
        answer = await self.request(url, body, headers, params)
        raise_for(answer.status, answer.text, answer.headers, self.where, fix or self.fix)
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
