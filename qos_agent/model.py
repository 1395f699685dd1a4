"""Plain data shared by every part of the agent: configuration, results and points.

This module imports nothing of the project, so probes and exporters can depend on it without
pulling in the runner, the scheduler or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What a step or a journey run came to."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    DEGRADED = "degraded"  # passed, but slower than its latency objective

    @property
    def ok(self) -> bool:
        """A degraded run still worked for the customer: it counts as a success."""
        return self is Outcome.PASSED or self is Outcome.DEGRADED  # identity: members are singletons


class ErrorClass(StrEnum):
    """Why a step failed: the `error` field of every point."""

    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    STATUS = "status"
    ASSERTION = "assertion"
    EXTRACT = "extract"
    BROWSER = "browser"
    TOO_LARGE = "too_large"
    REDIRECTS = "redirects"
    SCRIPT = "script"  # a `script` step's own code raised (what no other class names)
    INTERNAL = "internal"


# Tag names the metrics schema sets itself: a journey's own tags may not use them. `owner`,
# `customer_reason` and `weight` are journey keys carried as tags (qos_agent/config/metadata.py).
JOURNEY_KEY_TAGS = frozenset({"owner", "customer_reason", "weight"})
RESERVED_TAGS = frozenset({"journey", "step", "region", "agent", "probe", "kind", "state"}) | JOURNEY_KEY_TAGS


class JourneyKind(StrEnum):
    JOURNEY = "journey"
    UPTIME = "uptime"  # the plain health check the evaluator compares journeys with


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written: every later error can still name file:line:col."""

    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# ---------------------------------------------------------------------------------------------
# Configuration (parsed once by qos_agent.config.loader, then frozen)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extraction:
    """`extract: {name: {json|header|regex|cookie: expr}}`: a value a step feeds to later steps."""

    name: str
    source: str  # json | header | regex | cookie
    expr: str
    location: Location
    secret: bool = False  # `secret: true`: the value is masked wherever the agent writes


@dataclass(frozen=True, slots=True)
class Sends:
    """What a step sends that may carry credentials (a step kind declares it, `StepKind.sends`).

    The core renders these for every run and learns the secrets in them, whatever the kind and
    however its probe renders them: a sensitive header's value (Authorization, Cookie...), URL
    userinfo (and the Basic credentials a client derives from it), a credential's value."""

    headers: tuple[tuple[str, str], ...] = ()  # (name, template)
    urls: tuple[str, ...] = ()  # templates
    credentials: tuple[str, ...] = ()  # templates whose value is a secret (a basic-auth password...)
    journey_headers: bool = False  # the journey's `headers:` (and defaults) go out with the step too


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    kind: str  # the probe's registry key: http, browser, ...
    spec: Any  # the probe's own frozen config object, made by its from_config
    timeout_s: float
    location: Location
    always_run: bool = False
    degraded_latency_s: float | None = None
    extract: tuple[Extraction, ...] = ()
    # What the core renders per run to learn secrets (from Sends, only what may hold one):
    # ("header", name, template), ("url", "", template) or ("credential", "", template).
    learn: tuple[tuple[str, str, str], ...] = ()
    heavy: bool = False  # its kind takes a slot of agent.browser_concurrency (a browser)


@dataclass(frozen=True, slots=True)
class Slo:
    success: float = 0.99  # share of good runs, 0..1
    latency_s: float | None = None  # a good run stays under this


@dataclass(frozen=True, slots=True)
class DisruptionRules:
    """When the evaluator opens and closes a disruption (see qos_agent/quality/evaluator.py)."""

    open_after: int = 2  # consecutive failed runs
    close_after: int = 3  # consecutive good runs
    window_s: float = 1800.0  # the rolling window of the slow and latency rules
    min_failures: int = 3  # failures the window must hold before the slow rule may open
    min_runs: int = 10  # runs the window must hold before the latency rule may open


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """`alert: {severity, runbook}` of a journey: what an alert sink says about its disruptions."""

    severity: str = ""  # empty: the sink's default (warning)
    runbook: str = ""  # a URL a person opens from the page


@dataclass(frozen=True, slots=True)
class Journey:
    name: str
    steps: tuple[Step, ...]
    interval_s: float
    location: Location
    description: str = ""
    kind: JourneyKind = JourneyKind.JOURNEY
    regions: tuple[str, ...] = ()  # empty: every region
    tags: tuple[tuple[str, str], ...] = ()
    slo: Slo = field(default_factory=Slo)
    variables: tuple[tuple[str, str], ...] = ()  # global variables merged in, journey's win
    retries: int = 0
    timeout_s: float = 60.0  # the whole run sits under this
    headers: tuple[tuple[str, str], ...] = ()  # defaults.headers, sent by every HTTP step
    disruption: DisruptionRules = field(default_factory=DisruptionRules)
    alert: AlertSpec | None = None
    traceparent: bool = True  # send W3C `traceparent` on its requests (ids and spans are recorded either way)
    origins: tuple[str, ...] = ()  # scheme://host:port its steps call (static URLs only)
    uptime: str = ""  # `uptime: NAME`: the uptime journey its disruptions are compared with
    # A digest of what it was built from, not how it was written (config/meaning.py): a reload keeps
    # the timing of a journey whose meaning is unchanged. Empty for journeys built in code.
    meaning: str = field(default="", compare=False)

    def same_meaning(self, other: Journey | None) -> bool:
        """Unchanged for a reload: the same digest (or, built in code, equal objects)."""
        if other is None:
            return False
        if self.meaning and other.meaning:
            return self.meaning == other.meaning
        return self == other

    def runs_in(self, region: str) -> bool:
        return not self.regions or region in self.regions


@dataclass(frozen=True, slots=True)
class AgentConfig:
    region: str = "local"
    name: str = "agent"
    interval_s: float = 60.0
    concurrency: int = 50
    browser_concurrency: int = 2
    state_dir: str = ".qos-agent"  # absolute after loading
    listen: str = "127.0.0.1:9469"
    sink_stale_after_s: float = 300.0  # /healthz degraded: a sink with points waiting delivered nothing this long
    shard: tuple[int, int] | None = None  # (index 1-based, count)
    max_loop_lag_s: float = 0.05  # a sample taken while the event loop was later than this is `lagged`
    loop: str = "auto"  # auto | asyncio | uvloop: the event loop `run` and `check` use
    traceparent: bool = True  # journeys send W3C `traceparent` unless they say otherwise
    trace_url: str = ""  # a link template with {trace_id}: alerts and reports link each run's trace


@dataclass(frozen=True, slots=True)
class ExporterConfig:
    type: str
    spec: Any  # the exporter's own frozen config object, made by its from_config
    location: Location


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    agent: AgentConfig
    journeys: tuple[Journey, ...]
    exporters: tuple[ExporterConfig, ...]
    secrets: frozenset[str] = frozenset()  # secret ${VAR} values (language/secrets.py): never shown
    warnings: tuple[str, ...] = ()  # located, for validate: the file runs, but something is unsafe
    files: tuple[str, ...] = ()  # other files it is made of (a script step's): `run --watch` watches them too

    def journey(self, name: str) -> Journey | None:
        return next((j for j in self.journeys if j.name == name), None)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

PHASES = ("dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "transfer_ms")


@dataclass(slots=True)
class Yielded:
    """What a step gives `extract:` (never exported; dropped once the core has extracted).

    `body` is what `json` and `regex` read (for a browser, regex reads the HTML and json the page's
    text: `json_body`); `headers` what `header` reads (lower-case names); `url` the address whose
    cookies `cookie` prefers. Named strings for `field` are the result's own `text`."""

    body: str = ""
    json_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""


@dataclass(slots=True)
class StepResult:
    """One step of one run. Probes fill it; the runner stamps identity and redacts secrets."""

    step: str
    probe: str
    outcome: Outcome
    duration_ms: float = 0.0
    error: ErrorClass | None = None
    error_message: str = ""
    status_code: int | None = None
    bytes: int = 0
    phases: dict[str, float] = field(default_factory=dict)  # dns_ms, connect_ms, tls_ms, ...
    metrics: dict[str, float] = field(default_factory=dict)  # probe-specific numbers (fcp_ms, cls...)
    artifacts: dict[str, str] = field(default_factory=dict)  # screenshot / trace paths (fields)
    text: dict[str, str] = field(default_factory=dict)  # probe-specific strings (tls_version, rcode...)
    body_excerpt: str = ""  # a failed step: the start of the response or message, masked, printable
    extracted: dict[str, str] = field(default_factory=dict)  # values for later steps; never exported
    yielded: Yielded | None = None  # what `extract:` reads; set by the probe when the step extracts
    start_ms: int = 0
    url: str = ""
    loop_lag_ms: float = 0.0  # the worst event-loop lateness seen while the step was in flight
    lagged: bool = False  # loop_lag_ms passed agent.max_loop_lag: the duration includes the agent's delay
    span_id: str = ""  # the step's span in the run's trace (16 hex)
    request_spans: list[str] = field(default_factory=list)  # span ids its requests carried (the parent id on the wire)
    # Parts a step recorded as step points of their own (a script's `ctx.step("x")`: `STEP.x`); the
    # runner puts them into the run's steps before the step itself. Empty for every other step.
    substeps: tuple[StepResult, ...] = ()

    @classmethod
    def failure(cls, step: str, probe: str, error: ErrorClass, message: str, **kw: Any) -> StepResult:
        return cls(step=step, probe=probe, outcome=Outcome.FAILED, error=error, error_message=message, **kw)


@dataclass(slots=True)
class JourneyResult:
    """One run (one attempt) of one journey, with all its steps."""

    journey: str
    kind: JourneyKind
    region: str
    agent: str
    run_id: str
    start_ms: int
    outcome: Outcome
    duration_ms: float
    steps: list[StepResult]
    attempt: int = 1
    tags: tuple[tuple[str, str], ...] = ()
    failed_step: str = ""
    error: ErrorClass | None = None
    error_message: str = ""
    final: bool = True  # False for an attempt that a retry followed
    loop_lag_ms: float = 0.0  # the worst event-loop lateness during the whole run
    lagged: bool = False  # loop_lag_ms passed agent.max_loop_lag: its duration is not the target's alone
    trace_id: str = ""  # W3C trace id of this attempt (32 hex): one trace per run
    span_id: str = ""  # the run's root span
    first_trace_id: str = ""  # a retry: the trace of the run's first attempt (a span link)
    first_span_id: str = ""  # ...and that attempt's root span

    @property
    def flaky(self) -> bool:
        """Passed, but only on a retry: recorded, never hidden."""
        return self.outcome.ok and self.attempt > 1


# ---------------------------------------------------------------------------------------------
# Points: the one shape every sink writes (the metrics schema of DESIGN.md)
# ---------------------------------------------------------------------------------------------

FieldValue = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    time_ms: int

    def tag(self, name: str) -> str | None:
        return dict(self.tags).get(name)

    def field(self, name: str) -> FieldValue | None:
        return dict(self.fields).get(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "measurement": self.measurement,
            "tags": dict(self.tags),
            "fields": dict(self.fields),
            "time_ms": self.time_ms,
        }
