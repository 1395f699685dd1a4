"""The `alertmanager` and `webhook` sink types: their keys, located errors and JSON Schema; light to import.

`create` imports the run-time side (exporters/alerts/alertmanager.py, webhook.py: aiohttp) only when
the agent runs. A webhook's URL is never echoed in a message: for Slack its path is the credential.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import ClassVar

from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.sinks import Exporter, ExporterEnv, SinkType
from qos_agent.sinks.labels import LABEL
from qos_agent.sinks.options import basic_auth, http_url, spool_name
from qos_agent.sinks.options import headers as sink_headers
from qos_agent.sinks.schemas import DURATION, HTTP_URL, SPOOL_NAME, STR_MAP, TEXT, Schema, entry

AM_KEYS = ("type", "name", "url", "urls", "resend", "labels", "auth", "timeout")
WEBHOOK_KEYS = ("type", "name", "url", "format", "headers", "routing_key", "timeout")
FORMATS = ("json", "slack", "pagerduty")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
MIN_RESEND_S = 10.0
# The labels the alertmanager sink sets itself on every alert (a sink's `labels:` may not take them).
CORE_LABELS = frozenset({"alertname", "journey", "region", "agent", "severity", "hidden_from_uptime"})


@dataclass(frozen=True, slots=True)
class AlertmanagerSpec:
    url: str
    name: str  # stable: names the durable store and the state file
    resend_s: float = 60.0
    labels: tuple[tuple[str, str], ...] = ()
    authorization: str = ""  # the Authorization header's value, added to each request (never stored)
    timeout_s: float = 10.0
    more: tuple[tuple[str, str], ...] = ()  # (url, name) of the other instances of an HA pair (see `split`)


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    name: str
    format: str = "json"
    headers: tuple[tuple[str, str], ...] = ()
    routing_key: str = ""  # PagerDuty's: added to each body when it is sent, never stored
    timeout_s: float = 10.0


def read_auth(r: Reader, problems: Problems) -> str:
    """`auth: {bearer: T}` or `auth: {username: U, password: P}` -> the Authorization header value."""
    node = r.get("auth")
    if node is None:
        return ""
    a = Reader(node, problems, ("bearer", "username", "password"), "auth")
    if not a.ok:
        return ""
    if a.has("bearer") and (a.has("username") or a.has("password")):
        problems.add(node.loc, "'auth' has both a bearer token and basic auth", "keep one of them")
        return ""
    if a.has("bearer"):
        return f"Bearer {a.str('bearer')}"
    if a.has("username") != a.has("password"):
        problems.add(node.loc, "basic 'auth' needs both 'username' and 'password'",
                     "write auth: {username: ${AM_USER}, password: ${AM_PASSWORD}}")
        return ""
    if a.has("username"):
        user = a.str("username")
        if ":" in user:
            problems.add(node.loc, "'auth.username' cannot contain ':' (HTTP basic auth)", "use a user without ':'")
        return basic_auth(user, a.str("password"))
    problems.add(node.loc, "'auth' is empty", "write auth: {bearer: ${AM_TOKEN}} or {username: ..., password: ...}")
    return ""


def _am_urls(r: Reader, problems: Problems) -> list[str]:
    node = r.get("url") if r.has("url") else r.get("urls")
    if r.has("url") and r.has("urls"):
        problems.add(r.node.key_loc("urls"), "give 'url' or 'urls', not both", "an HA pair is urls: [a, b]")
        return []
    if node is None:
        problems.add(r.node.loc, "alertmanager exporter needs 'url' (or 'urls' for an HA pair)",
                     "add url: http://127.0.0.1:9093")
        return []
    items = [node] if not node.is_list else list(node.value)
    if not items or any(not isinstance(i.value, str) or not i.value for i in items):
        problems.add(node.loc, "'urls' must be a non-empty list of URLs", "write urls: [http://am-1:9093, http://am-2:9093]")
        return []
    urls = [http_url(i, str(i.value), problems, "url: http://127.0.0.1:9093") for i in items]
    if len(set(urls)) != len(urls):
        problems.add(node.loc, "'urls' lists one URL twice", "list each Alertmanager once")
    return urls


class AlertmanagerType(SinkType[AlertmanagerSpec]):
    """Disruptions -> Alertmanager alerts (API v2), through the core's durable delivery."""

    type: ClassVar[str] = "alertmanager"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> AlertmanagerSpec | None:
        r = Reader(node, problems, AM_KEYS, "alertmanager exporter")
        if not r.ok:
            return None
        before = len(problems)
        urls = _am_urls(r, problems)
        resend = r.duration("resend", 60.0)
        resend_node = r.get("resend")
        if resend_node is not None and resend < MIN_RESEND_S:
            problems.add(resend_node.loc, f"'resend' is {resend_node.value}, below {MIN_RESEND_S:.0f}s",
                         "write resend: 10s or more (1m is usual)")
        labels = r.str_map("labels")
        labels_node = r.get("labels")
        for name in labels:
            loc = labels_node.key_loc(name) if labels_node is not None else node.loc
            if name in CORE_LABELS:
                problems.add(loc, f"label '{name}' is set by the agent itself", "choose another label name")
            elif not LABEL.match(name) or name.startswith("__"):
                problems.add(loc, f"'{name}' is not a valid label name",
                             "use letters, digits and '_', not starting with a digit or '__'")
        authorization = read_auth(r, problems)
        name = spool_name(r, problems, "")
        if len(problems) != before:
            return None
        instances = []
        for i, url in enumerate(urls):
            if name:
                sink = name if len(urls) == 1 else f"{name}-{i + 1}"
            else:
                sink = f"alertmanager-{hashlib.sha1(url.encode()).hexdigest()[:8]}"
            instances.append((url, sink))
        (url, sink), *more = instances
        return AlertmanagerSpec(url=url, name=sink, resend_s=resend, labels=tuple(sorted(labels.items())),
                                authorization=authorization, timeout_s=r.duration("timeout", 10.0), more=tuple(more))

    @classmethod
    def split(cls, spec: AlertmanagerSpec) -> list[AlertmanagerSpec]:
        """One spec per instance of an HA pair: the loader makes one sink (one durable queue) of each."""
        return [replace(spec, more=()), *(replace(spec, url=url, name=name, more=()) for url, name in spec.more)]

    @classmethod
    def json_schema(cls) -> Schema:
        auth: Schema = {"type": "object", "additionalProperties": False, "minProperties": 1,
                        "properties": {"bearer": TEXT, "username": TEXT, "password": TEXT}}
        types: dict[str, Schema] = {
            "name": SPOOL_NAME, "url": HTTP_URL,
            "urls": {"type": "array", "minItems": 1, "items": HTTP_URL}, "resend": DURATION, "labels": STR_MAP,
            "auth": auth, "timeout": DURATION,
        }
        return entry(AM_KEYS, types)

    @classmethod
    def create(cls, spec: AlertmanagerSpec, env: ExporterEnv) -> Exporter:
        from exporters.alerts.alertmanager import AlertmanagerSink

        return AlertmanagerSink(spec, env)


class WebhookType(SinkType[WebhookSpec]):
    """Disruption events -> one HTTP POST each, as plain JSON, a Slack message or a PagerDuty event."""

    type: ClassVar[str] = "webhook"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> WebhookSpec | None:
        r = Reader(node, problems, WEBHOOK_KEYS, "webhook exporter")
        if not r.ok:
            return None
        before = len(problems)
        fmt = r.choice("format", FORMATS, "json")
        if not r.has("url") and fmt != "pagerduty":
            problems.add(node.loc, "webhook exporter needs 'url'", "add url: ${ALERT_WEBHOOK_URL}")
        url = http_url(r.get("url"), r.str("url", PAGERDUTY_URL if fmt == "pagerduty" else ""), problems,
                       "url: https://hooks.example/alerts", secret_path=True)
        routing_key = r.str("routing_key")
        if fmt == "pagerduty" and not routing_key:
            problems.add(node.loc, "format: pagerduty needs 'routing_key'",
                         "add routing_key: ${PAGERDUTY_ROUTING_KEY} (the integration key of a PagerDuty service)")
        if fmt != "pagerduty" and r.has("routing_key"):
            problems.add(node.key_loc("routing_key"), f"'routing_key' belongs to format: pagerduty, not {fmt}",
                         "remove it or write format: pagerduty")
        name = spool_name(r, problems, f"webhook-{fmt}-{hashlib.sha1(url.encode()).hexdigest()[:8]}")
        spec = WebhookSpec(url=url, name=name, format=fmt, headers=sink_headers(r, problems),
                           routing_key=routing_key, timeout_s=r.duration("timeout", 10.0))
        return spec if len(problems) == before else None

    @classmethod
    def json_schema(cls) -> Schema:
        types: dict[str, Schema] = {
            "name": SPOOL_NAME, "url": HTTP_URL, "format": {"enum": list(FORMATS)},
            "headers": STR_MAP, "routing_key": TEXT, "timeout": DURATION,
        }
        return entry(WEBHOOK_KEYS, types)

    @classmethod
    def create(cls, spec: WebhookSpec, env: ExporterEnv) -> Exporter:
        from exporters.alerts.webhook import WebhookSink

        return WebhookSink(spec, env)
