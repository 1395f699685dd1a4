"""The two ways to hand a batch of line protocol to InfluxDB; their answers judged by the one send policy.

v1 (InfluxDB 1.x) is a plain POST to `/write` (qos_agent/sinks/http.py); v2 (InfluxDB 2.x, 3.x,
Cloud, 1.8+) uses influxdb-client's `InfluxDBClientAsync` write API directly — not the batching
`write_api()`, which swallows errors, so a failed batch would be lost instead of staying in the
spool. Both map the answer through qos_agent/sinks/policy.py, like every other sink; what is
InfluxDB's own here is only the fix a human is told (which database, bucket or credentials).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Callable, Sequence
from typing import Any

from exporters.influxdb.config import Target
from qos_agent.errors import RetryableError
from qos_agent.sinks.http import Poster
from qos_agent.sinks.options import basic_auth
from qos_agent.sinks.policy import error_for
from qos_agent.sinks.urls import without_userinfo

log = logging.getLogger(__name__)

GZIP_INLINE_LIMIT = 256 * 1024  # bigger bodies are compressed on a thread, off the event loop


def fix_for(target: Target, status: int) -> str:
    """What a human must do when InfluxDB says the credentials or the place are wrong."""
    if status == 404:
        fix = (f'create the database (CREATE DATABASE "{target.database}") or set create_database: true'
               if target.api == "v1" else f"check that org '{target.org}' and bucket '{target.bucket}' exist")
    elif status in (401, 403):
        fix = ("check username and password" if target.api == "v1"
               else "check the token and that it may write to the bucket")
    else:
        fix = "check the url"
    return f"{fix}; points stay spooled until it works"


class V1Sender:
    """POST /write?db=&rp=&precision=ms with gzip and basic auth; creates the database once first."""

    def __init__(self, target: Target, mask: Callable[[str], str]) -> None:
        self.target = target
        self.where = without_userinfo(target.url)
        self.poster = Poster(where=self.where, timeout_s=target.timeout_s, verify_tls=target.verify_tls, mask=mask)
        self._prepared = not target.create_database

    def _auth(self) -> dict[str, str]:
        if not self.target.username:
            return {}
        return {"Authorization": basic_auth(self.target.username, self.target.password)}

    async def prepare(self) -> None:
        """CREATE DATABASE (idempotent in InfluxDB). Only unreachable/unauthorised blocks writing."""
        name = self.target.database.replace("\\", "\\\\").replace('"', '\\"')
        answer = await self.poster.request(self.target.url + "/query", None, self._auth(),
                                           {"q": f'CREATE DATABASE "{name}"'})
        err = error_for(answer.status, answer.text, answer.headers, self.where, fix_for(self.target, answer.status))
        if isinstance(err, RetryableError) and answer.status not in (403, 404):
            raise err
        if err is not None or '"error"' in answer.text:
            log.warning("influxdb %s: could not create database '%s' (%s); writing anyway (create it yourself "
                        "or set create_database: false)", self.where, self.target.database, answer.text.strip()[:300])
        self._prepared = True

    async def __call__(self, lines: Sequence[str]) -> None:
        if not self._prepared:
            await self.prepare()
        body = "\n".join(lines).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8", **self._auth()}
        if self.target.gzip:
            body = (gzip.compress(body, 1) if len(body) < GZIP_INLINE_LIMIT
                    else await asyncio.to_thread(gzip.compress, body, 1))
            headers["Content-Encoding"] = "gzip"
        params = {"db": self.target.database, "precision": "ms"}
        if self.target.retention_policy:
            params["rp"] = self.target.retention_policy
        answer = await self.poster.request(self.target.url + "/write", body, headers, params)
        err = error_for(answer.status, answer.text, answer.headers, self.where, fix_for(self.target, answer.status))
        if err is not None:
            raise err

    async def close(self) -> None:
        await self.poster.close()


def _headers(h: Any) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in dict(h or {}).items()}
    except (TypeError, ValueError):
        return {}


class V2Sender:
    """influxdb-client's async write API (/api/v2/write), org + bucket + token."""

    def __init__(self, target: Target, mask: Callable[[str], str]) -> None:
        self.target = target
        self.where = without_userinfo(target.url)
        self.mask = mask
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
        import aiohttp
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.domain.write_precision import WritePrecision

        try:
            await self._write_api().write(bucket=self.target.bucket, org=self.target.org or None,
                                          record=list(lines), write_precision=WritePrecision.MS)
        except InfluxDBError as e:
            status = int(getattr(e, "status", 0) or 0)
            raw = getattr(e, "message", "") or getattr(e, "reason", "") or str(e)
            message = self.mask(raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))
            if status == 0:
                raise RetryableError(f"cannot write to {self.where}: {message}") from None
            headers = _headers(getattr(e, "headers", None))
            if e.retry_after is not None:
                headers["Retry-After"] = str(e.retry_after)
            err = error_for(status, message, headers, self.where, fix_for(self.target, status))
            if err is not None:
                raise err from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise RetryableError(f"cannot reach {self.where}: {type(e).__name__}: {self.mask(str(e))}") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._api = None
