"""The `prometheus_remote_write` sink: the journey series, as remote write 1.0, into any compatible store.

Prometheus (--web.enable-remote-write-receiver), Mimir, Thanos Receive, VictoriaMetrics, Cortex...
The sink keeps the same `JourneySeries` as the agent's `/metrics` (qos_agent/sinks/series.py): each point
updates it, and the series the point changed become one stored record, a serialized `WriteRequest`
whose samples carry the run's own timestamp. The core keeps records durably and sends them in
order (parallel: 1, so a series never arrives out of order); `send` concatenates a batch into one
request, snappy-compresses it, and classifies the answer per the spec: 2xx accepted, 5xx and 429
retried (Retry-After honoured), any other 4xx refused for good (out-of-order or too-old samples,
a bad label) -> PermanentError, which the core bisects down to the bad records and dead-letters.
401/403/404 are retried with a fix instead: a wrong token must not send every point to dead letter.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import aiohttp

from exporters.prometheus.proto import compress, label_bytes, timeseries_entry
from qos_agent import __version__
from qos_agent.errors import PermanentError, RetryableError
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.text import shown as quoted
from qos_agent.model import Point
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import DeliveryOptions, ExporterEnv, NetworkSink
from qos_agent.sinks.series import FIXED_LABELS, Family, JourneySeries, Labels

log = logging.getLogger(__name__)

KEYS = frozenset({"type", "name", "url", "headers", "bearer_token", "basic_auth", "external_labels", "timeout",
                  "batch_size", "flush_interval", "max_spool_mb", "verify_tls"})
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_PROTOCOL_HEADERS = frozenset({"content-encoding", "content-type", "x-prometheus-remote-write-version"})


@dataclass(frozen=True, slots=True)
class RemoteWriteSpec:
    url: str
    name: str  # the spool file's name: stable across restarts
    headers: tuple[tuple[str, str], ...] = ()
    bearer_token: str = ""
    username: str = ""
    password: str = ""
    external_labels: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 10.0
    verify_tls: bool = True
    batch_size: int = 100  # records (one per point) per request
    flush_interval_s: float = 1.0
    max_spool_mb: float = 512.0


def _auth(r: Reader, node: Node, problems: Problems) -> tuple[str, str]:
    basic = r.get("basic_auth")
    if basic is None:
        return "", ""
    b = Reader(basic, problems, {"username", "password"}, "basic_auth", required=("username", "password"))
    user = b.str("username")
    if ":" in user:
        problems.add(basic.loc, "'basic_auth.username' cannot contain ':'", "use a user without ':'")
    if r.has("bearer_token"):
        problems.add(node.key_loc("bearer_token"), "use either 'bearer_token' or 'basic_auth', not both",
                     "remove one of them")
    return user, b.str("password")


def _labels(r: Reader, problems: Problems) -> tuple[tuple[str, str], ...]:
    labels = r.str_map("external_labels")
    n = r.get("external_labels")
    for name in labels:
        if n is not None and (not _LABEL.match(name) or name.startswith("__") or name in FIXED_LABELS):
            problems.add(n.key_loc(name), f"external label '{name}' is not a free Prometheus label name",
                         "use letters, digits and '_', not starting with a digit or '__', and not one of "
                         f"{', '.join(sorted(FIXED_LABELS))}")
    return tuple(sorted(labels.items()))


class PrometheusRemoteWriteSink(NetworkSink[RemoteWriteSpec]):
    type: ClassVar[str] = "prometheus_remote_write"

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> RemoteWriteSpec | None:
        r = Reader(node, problems, KEYS, "prometheus_remote_write exporter", required=("url",))
        if not r.ok:
            return None
        before = len(problems)
        url = r.str("url")
        url_node = r.get("url")
        parts = urlsplit(url)
        if url_node is not None and url and (parts.scheme not in ("http", "https") or not parts.hostname):
            problems.add(url_node.loc, f"'url' is not an http(s) URL: {quoted(url)}",
                         "write e.g. url: http://127.0.0.1:9090/api/v1/write")
        headers = r.str_map("headers")
        for key in headers:
            if key.lower() in _PROTOCOL_HEADERS | {"authorization"}:
                problems.add(node.key_loc("headers"), f"header '{key}' is set by the sink",
                             "use bearer_token or basic_auth for Authorization; the protocol headers are fixed")
        user, password = _auth(r, node, problems)
        name = r.str("name")
        name_node = r.get("name")
        if name_node is not None and not _NAME.match(name):
            problems.add(name_node.loc, f"'name' must be letters, digits, '.', '_' or '-': {quoted(name)}",
                         "write e.g. name: prom-main")
        if not name:
            name = f"prometheus-rw-{hashlib.sha1(url.encode()).hexdigest()[:8]}"
        max_mb = r.number("max_spool_mb", 512.0)
        if max_mb is None or max_mb <= 0:
            mb_node = r.get("max_spool_mb")
            if mb_node is not None:
                problems.add(mb_node.loc, "'max_spool_mb' must be more than 0", "write e.g. max_spool_mb: 512")
            max_mb = 512.0
        spec = RemoteWriteSpec(
            url=url, name=name, headers=tuple(sorted(headers.items())), bearer_token=r.str("bearer_token"),
            username=user, password=password, external_labels=_labels(r, problems),
            timeout_s=r.duration("timeout", 10.0), verify_tls=r.bool("verify_tls", True),
            batch_size=r.int("batch_size", 100, 1, 100_000), flush_interval_s=r.duration("flush_interval", 1.0),
            max_spool_mb=max_mb)
        return spec if len(problems) == before else None

    @classmethod
    def create(cls, spec: RemoteWriteSpec, env: ExporterEnv) -> PrometheusRemoteWriteSink:
        return cls(spec, env)

    def __init__(self, spec: RemoteWriteSpec, env: ExporterEnv) -> None:
        self.spec = spec
        self.env = env
        self.series = JourneySeries()
        # Per series (family, labels): for each of its samples, an index into last_ms and the label bytes.
        self.wire: dict[tuple[Family, Labels], list[tuple[int, bytes]]] = {}
        self.last_ms: list[int] = []  # each sample series' newest timestamp
        self.lock = threading.Lock()  # encode runs on a worker thread
        self.session: aiohttp.ClientSession | None = None
        headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                   "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": f"qos-agent/{__version__}",
                   **dict(spec.headers)}
        if spec.bearer_token:
            headers["Authorization"] = f"Bearer {spec.bearer_token}"
        self.headers = headers

    def sink_name(self) -> str:
        return self.spec.name

    def delivery(self) -> DeliveryOptions:
        # One request at a time: remote write wants each series' samples in time order.
        return DeliveryOptions(batch_size=self.spec.batch_size, flush_interval_s=self.spec.flush_interval_s,
                               max_spool_mb=self.spec.max_spool_mb, parallel=1)

    def encode(self, points: Sequence[Point]) -> list[str]:
        """One record per point that changed a series: base64 of a WriteRequest of those series' samples."""
        records = []
        with self.lock:
            for p in points:
                changed = self.series.observe(p)
                if changed:
                    records.append(self._record(changed, p.time_ms))
        return records

    def _record(self, changed: Sequence[tuple[Family, Labels]], time_ms: int) -> str:
        out = []
        for key in dict.fromkeys(changed):  # a series changed twice by one point is sent once
            wire = self.wire.get(key)
            if wire is None:
                wire = self.wire[key] = self._wire(*key)
            for (sid, labels), value in zip(wire, self.series.sample_values(*key), strict=True):
                ts = self.last_ms[sid] = max(time_ms, self.last_ms[sid] + 1)  # strictly increasing per series
                out.append(timeseries_entry(labels, value, ts))
        return base64.b64encode(b"".join(out)).decode("ascii")

    def _wire(self, family: Family, labels: Labels) -> list[tuple[int, bytes]]:
        """Once per series: its samples' full label sets (name, external labels) serialized by protobuf."""
        wire = []
        for s in self.series.samples(family, labels, 0):
            have = {k for k, _ in s.labels}
            extra = ((k, v) for k, v in self.spec.external_labels if k not in have)
            wire.append((len(self.last_ms), label_bytes(sorted((("__name__", s.name), *s.labels, *extra)))))
            self.last_ms.append(-1)
        return wire

    async def send(self, records: Sequence[str]) -> None:
        body = compress(b"".join(base64.b64decode(r) for r in records))
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.spec.timeout_s))
        auth = aiohttp.BasicAuth(self.spec.username, self.spec.password) if self.spec.username else None
        try:
            async with self.session.post(self.spec.url, data=body, headers=self.headers, auth=auth,
                                         ssl=self.spec.verify_tls) as resp:
                if 200 <= resp.status < 300:
                    return
                text = (await resp.text(errors="replace")).strip()[:500]
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise RetryableError(f"{self.spec.url}: {type(e).__name__}: {e}") from None
        raise classify(resp.status, f"HTTP {resp.status} from {self.spec.url}: {text}", retry_after)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def classify(status: int, message: str, retry_after: str | None) -> RetryableError | PermanentError:
    """A refused request -> what the core does with it (remote-write 1.0: 5xx retried, 4xx never)."""
    if status in (401, 403, 404):
        return RetryableError(message, fix="check url, bearer_token/basic_auth and headers; "
                                           "points stay spooled until it works")
    if status == 429 or status >= 500 or status < 400:
        seconds = None
        if retry_after:
            try:
                seconds = max(0.0, float(retry_after))
            except ValueError:
                seconds = None
        return RetryableError(message, retry_after=seconds)
    return PermanentError(message)
