"""The two ways to hand a batch of line protocol to InfluxDB, and how their failures are classified.

v1 (InfluxDB 1.x) is a plain aiohttp POST to `/write`; v2 (InfluxDB 2.x, 3.x, Cloud, 1.8+) uses
influxdb-client's `InfluxDBClientAsync` write API directly — not the batching `write_api()`, which
swallows errors, so a failed batch would be lost instead of staying in the spool. Each sender raises
the core's `RetryableError` / `PermanentError`, so its delivery loop decides what to retry or dead-letter;
auth and missing-database answers are retryable with a `fix`: the points wait until a human acts.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from qos_agent.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)

GZIP_INLINE_LIMIT = 256 * 1024  # bigger bodies are compressed on a thread, off the event loop


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to write (the parts of the exporter's spec a sender needs)."""

    url: str
    api: str
    database: str = ""
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    org: str = ""
    bucket: str = ""
    token: str = ""
    create_database: bool = True
    gzip: bool = True
    timeout_s: float = 10.0
    verify_tls: bool = True


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(status: int, message: str, headers: Mapping[str, str], target: Target) -> Exception | None:
    """An HTTP answer -> None (accepted) or the delivery exception saying what to do with the batch."""
    if 200 <= status < 300:
        return None
    text = f"HTTP {status} from {target.url}: {message.strip()[:500]}"
    if status in (401, 403):
        fix = ("check username and password" if target.api == "v1"
               else "check the token and that it may write to the bucket")
        return RetryableError(text, fix=f"{fix}; points stay spooled until it works")
    if status == 404:
        fix = (f'create the database (CREATE DATABASE "{target.database}") or set create_database: true'
               if target.api == "v1" else f"check that org '{target.org}' and bucket '{target.bucket}' exist")
        return RetryableError(text, fix=f"{fix}; points stay spooled until it works")
    if status in (429, 503) or status >= 500 or status < 200 or 300 <= status < 400:
        return RetryableError(text, retry_after=retry_after_seconds(headers.get("Retry-After")))
    return PermanentError(text)  # 400 (field-type conflict, parse error, partial write), 413, 422, ...


def _headers(h: Any) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in dict(h or {}).items()}
    except (TypeError, ValueError):
        return {}


class V1Sender:
    """POST /write?db=&rp=&precision=ms with gzip and basic auth; creates the database once first."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._session: aiohttp.ClientSession | None = None
        self._prepared = not target.create_database

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = ({"Authorization": aiohttp.encode_basic_auth(self.target.username, self.target.password)}
                       if self.target.username else {})
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.target.timeout_s),
                connector=aiohttp.TCPConnector(ssl=self.target.verify_tls, limit=4))
        return self._session

    async def _post(self, path: str, params: dict[str, str], body: bytes | None,
                    headers: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        try:
            async with self._http().post(self.target.url + path, params=params, data=body,
                                         headers=headers) as resp:
                return resp.status, await resp.text(errors="replace"), dict(resp.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise RetryableError(f"cannot reach {self.target.url}: {type(e).__name__}: {e}") from e

    async def prepare(self) -> None:
        """CREATE DATABASE (idempotent in InfluxDB). Only unreachable/unauthorised blocks writing."""
        name = self.target.database.replace("\\", "\\\\").replace('"', '\\"')
        status, text, headers = await self._post("/query", {"q": f'CREATE DATABASE "{name}"'}, None, {})
        err = classify(status, text, headers, self.target)
        if isinstance(err, RetryableError) and status not in (403, 404):
            raise err
        if err is not None or '"error"' in text:
            log.warning("influxdb %s: could not create database '%s' (%s); writing anyway (create it yourself "
                        "or set create_database: false)", self.target.url, self.target.database, text.strip()[:300])
        self._prepared = True

    async def __call__(self, lines: Sequence[str]) -> None:
        if not self._prepared:
            await self.prepare()
        body = "\n".join(lines).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.target.gzip:
            body = (gzip.compress(body, 1) if len(body) < GZIP_INLINE_LIMIT
                    else await asyncio.to_thread(gzip.compress, body, 1))
            headers["Content-Encoding"] = "gzip"
        params = {"db": self.target.database, "precision": "ms"}
        if self.target.retention_policy:
            params["rp"] = self.target.retention_policy
        status, text, resp_headers = await self._post("/write", params, body, headers)
        err = classify(status, text, resp_headers, self.target)
        if err is not None:
            raise err

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class V2Sender:
    """influxdb-client's async write API (/api/v2/write), org + bucket + token."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._client: Any = None
        self._api: Any = None

    def _write_api(self) -> Any:
        if self._api is None:
            from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

            client: Any = InfluxDBClientAsync
            self._client = client(
                url=self.target.url, token=self.target.token or None, org=self.target.org or None,
                timeout=int(self.target.timeout_s * 1000), enable_gzip=self.target.gzip,
                verify_ssl=self.target.verify_tls)
            self._api = self._client.write_api()
        return self._api

    async def __call__(self, lines: Sequence[str]) -> None:
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.domain.write_precision import WritePrecision

        try:
            await self._write_api().write(bucket=self.target.bucket, org=self.target.org or None,
                                          record=list(lines), write_precision=WritePrecision.MS)
        except InfluxDBError as e:
            status = int(getattr(e, "status", 0) or 0)
            raw = getattr(e, "message", "") or getattr(e, "reason", "") or str(e)
            message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            headers = _headers(getattr(e, "headers", None))
            if e.retry_after is not None:
                headers["Retry-After"] = str(e.retry_after)
            if status == 0:
                raise RetryableError(f"cannot write to {self.target.url}: {message}") from e
            err = classify(status, message, headers, self.target)
            if err is not None:
                raise err from e
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise RetryableError(f"cannot reach {self.target.url}: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._api = None
