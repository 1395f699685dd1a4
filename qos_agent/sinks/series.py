"""The journey series of the Prometheus contract, kept from points: one state, two readers.

The agent's `/metrics` (qos_agent/ops/journey_metrics.py) and the `prometheus_remote_write` sink
both feed points of the metrics schema (journey, step, disruption) to a `JourneySeries`, so the two
paths show exactly the same counters, gauges and histograms. It lives down here, beside the sinks,
because the import layers let the ops room read exporters but not the other way round.

Cardinality is bounded by journeys × steps × regions × agents (× the fixed outcome / error / phase
values): labels come only from the points' tags, never from URLs, messages or ids. Final attempts
only: a step counts when its run's journey point said `final`.

`lagged="true"|"false"` (the sample was taken while the agent's own event loop was late, see
qos_agent/runloop/looplag.py) splits the run and attempt counters, the failure counter and the
duration and phase histograms: at most x2 series. Latency rules and board panels select
`lagged="false"`; success ratios sum over both (a lagged run still passed or failed).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from qos_agent.model import JOURNEY_KEY_TAGS, PHASES, RESERVED_TAGS, Point
from qos_agent.sinks.exemplars import trace_id_of
from qos_agent.sinks.histogram import Histogram
from qos_agent.sinks.labels import DEFAULT_SEVERITY, label_name

Labels = tuple[tuple[str, str], ...]  # sorted by name
# A journey run takes from a few ms (loopback HTTP) to a minute (a browser journey at its timeout).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# One connection phase: from well under a millisecond (a cached DNS answer) to seconds.
PHASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Tags the schema sets; a journey's own become labels (qos_agent/sinks/labels.py), and so do the
# journey keys carried as tags (owner, customer_reason, weight: the scorecard groups by them).
SCHEMA_TAGS = RESERVED_TAGS - JOURNEY_KEY_TAGS


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: a dict key looked up per sample
class Family:
    name: str  # without _total: prometheus_client adds it to counters
    doc: str
    type: str  # counter | gauge | histogram
    buckets: tuple[float, ...] = ()

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.type == "counter" else self.name


RUNS = Family("qos_journey_runs", "Final journey runs by outcome", "counter")
ATTEMPTS = Family("qos_journey_attempts", "Every journey attempt, retries included, by outcome", "counter")
DURATION = Family("qos_journey_duration_seconds", "Duration of final journey runs", "histogram", DURATION_BUCKETS)
SUCCESS = Family("qos_journey_success", "1 if the last final run succeeded (passed or degraded), else 0", "gauge")
FLAKY = Family("qos_journey_flaky", "Final runs that passed only on a retry", "counter")
STEP_DURATION = Family("qos_step_duration_seconds", "Duration of steps of final runs", "histogram",
                       DURATION_BUCKETS)
STEP_PHASE = Family("qos_step_phase_seconds", "Connection phases of steps of final runs (dns, connect, tls, "
                    "ttfb, transfer)", "histogram", PHASE_BUCKETS)
STEP_FAILURES = Family("qos_step_failures", "Failed steps of final runs by error class", "counter")
DISRUPTION_OPEN = Family("qos_disruption_open", "1 while a disruption is open (0 once closed)", "gauge")
DISRUPTION_HIDDEN = Family("qos_disruption_hidden_seconds", "Seconds disruptions stayed hidden from uptime "
                           "monitoring (rising while a hidden one is open)", "counter")
# The scorecard's disrupted minutes (issue 26): seconds disruptions were open, the twin of the hidden counter.
DISRUPTION_SECONDS = Family("qos_disruption_seconds", "Seconds disruptions were open (rising while one is open)",
                            "counter")
FAMILIES = (RUNS, ATTEMPTS, DURATION, SUCCESS, FLAKY, STEP_DURATION, STEP_PHASE, STEP_FAILURES, DISRUPTION_OPEN,
            DISRUPTION_HIDDEN, DISRUPTION_SECONDS)


Value = float | Histogram


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample for remote write: a full series name, its sorted labels, the value, the time."""

    name: str
    labels: Labels
    value: float
    time_ms: int


_WITH: dict[tuple[Labels, str, str], Labels] = {}


def _with(labels: Labels, name: str, value: str) -> Labels:
    """labels plus one, sorted; memoised, as the same few label sets recur with every result."""
    key = (labels, name, value)
    found = _WITH.get(key)
    if found is None:
        if len(_WITH) > 100_000:
            _WITH.clear()
        found = _WITH[key] = tuple(sorted((*labels, (name, value))))
    return found


def _lagged(fields: Mapping[str, object]) -> str:
    """The `lagged` label value of a journey or step point (absent in older points: "false")."""
    return "true" if fields.get("lagged") is True else "false"


def _without(labels: Labels, *names: str) -> Labels:
    return tuple(kv for kv in labels if kv[0] not in names)


class JourneySeries:
    """The state of every journey series; `observe` returns the series a point changed."""

    def __init__(self) -> None:
        self.values: dict[Family, dict[Labels, Value]] = {f: {} for f in FAMILIES}
        self._final: dict[tuple[str, int], bool] = {}  # (run_id, attempt) -> final, from journey points
        self._label_cache: dict[tuple[tuple[tuple[str, str], ...], tuple[str, ...]], Labels] = {}
        self._hidden_closed: dict[Labels, float] = {}  # seconds hidden by closed disruptions, per series
        self._open: dict[tuple[str, str], Labels] = {}  # (journey, region) of an open disruption -> its labels
        self._open_since: dict[Labels, int] = {}  # an open disruption's series -> when it opened (ms)
        self._open_closed: dict[Labels, float] = {}  # seconds open of closed disruptions, per series

    def observe(self, point: Point) -> list[tuple[Family, Labels]]:
        if point.measurement == "journey":
            return self._journey(point)
        if point.measurement == "step":
            return self._step(point)
        if point.measurement == "disruption":
            return self._disruption(point)
        return []

    def observe_all(self, points: Iterable[Point]) -> None:
        for p in points:
            self.observe(p)

    def _labels(self, point: Point, *keep: str) -> Labels:
        """The point's tags as labels: `keep` of the schema's, and the journey's own (sanitised)."""
        key = (point.tags, keep)
        found = self._label_cache.get(key)
        if found is not None:
            return found
        own = {}
        for k, v in point.tags:
            if k in keep:
                own[k] = v
            elif k not in SCHEMA_TAGS:
                own[label_name(k)] = v
        if len(self._label_cache) > 100_000:
            self._label_cache.clear()
        labels = self._label_cache[key] = tuple(sorted(own.items()))
        return labels

    def _inc(self, family: Family, labels: Labels, by: float = 1.0) -> tuple[Family, Labels]:
        series = self.values[family]
        series[labels] = float(series.get(labels, 0.0)) + by  # type: ignore[arg-type]
        return family, labels

    def _set(self, family: Family, labels: Labels, value: float) -> tuple[Family, Labels]:
        self.values[family][labels] = value
        return family, labels

    def _observe(self, family: Family, labels: Labels, value: float, trace_id: str = "",
                 time_ms: int = 0) -> tuple[Family, Labels]:
        hist = self.values[family].get(labels)
        if not isinstance(hist, Histogram):
            hist = self.values[family][labels] = Histogram(family.buckets)
        hist.observe(value, trace_id, time_ms)
        return family, labels

    def _both_lagged(self, family: Family, labels: Labels) -> list[tuple[Family, Labels]]:
        """The same series with the other `lagged` value, made empty the first time either is seen:
        `increase()` cannot see a series' first sample, so without it the first lagged step of each
        series would be missing from the boards' lagged panels (as runs' counters, made at 0)."""
        other = _with(_without(labels, "lagged"), "lagged", "false" if ("lagged", "true") in labels else "true")
        if other in self.values[family]:
            return []
        self.values[family][other] = Histogram(family.buckets)
        return [(family, other)]

    def _journey(self, p: Point) -> list[tuple[Family, Labels]]:
        fields = dict(p.fields)
        final = bool(fields.get("final", True))
        if len(self._final) > 4096:
            self._final.clear()  # steps follow their journey point at once: old entries are never read
        self._final[(str(fields.get("run_id", "")), int(fields.get("attempt", 1)))] = final
        outcome = str(fields.get("outcome", ""))
        lagged = _lagged(fields)
        attempt = self._inc(ATTEMPTS, _with(_with(self._labels(p, "journey", "region", "agent"), "outcome", outcome),
                                            "lagged", lagged))
        if not final:
            return [attempt]
        base = self._labels(p, "journey", "region", "agent", "kind")
        run = _with(_with(base, "outcome", outcome), "lagged", lagged)
        changed = [attempt, self._inc(RUNS, run)]
        # Counters exist from the first run, so rate() sees the first change (and a board's lagged count is 0).
        for other in ("passed", "failed"):
            for other_lagged in ("false", "true"):
                key = _with(_with(base, "outcome", other), "lagged", other_lagged)
                if key != run and key not in self.values[RUNS]:
                    changed.append(self._set(RUNS, key, 0.0))
        changed += self._open_so_far(p)
        seconds = float(fields.get("duration_ms", 0.0)) / 1000
        changed.append(self._observe(DURATION, _with(base, "lagged", lagged), seconds, trace_id_of(fields),
                                     p.time_ms))
        changed += self._both_lagged(DURATION, _with(base, "lagged", lagged))
        changed.append(self._set(SUCCESS, base, 1.0 if fields.get("success") else 0.0))
        flaky = self._labels(p, "journey", "region", "agent")
        changed.append(self._inc(FLAKY, flaky, 1.0 if fields.get("flaky") else 0.0))
        return changed

    def _step(self, p: Point) -> list[tuple[Family, Labels]]:
        fields = dict(p.fields)
        if not self._final.get((str(fields.get("run_id", "")), int(fields.get("attempt", 1))), True):
            return []
        if fields.get("outcome") == "skipped":
            return []
        lagged = _lagged(fields)
        base = _with(self._labels(p, "journey", "step", "region", "agent", "probe"), "lagged", lagged)
        seconds = float(fields.get("duration_ms", 0.0)) / 1000
        changed = [self._observe(STEP_DURATION, base, seconds, trace_id_of(fields), p.time_ms),
                   *self._both_lagged(STEP_DURATION, base)]
        error = str(fields.get("error", ""))
        if error:
            changed.append(self._inc(STEP_FAILURES, _with(base, "error", error)))
        phased = _with(self._labels(p, "journey", "step", "region", "agent"), "lagged", lagged)
        for name in PHASES:
            value = fields.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                labels = _with(phased, "phase", name[:-3])
                changed.append(self._observe(STEP_PHASE, labels, float(value) / 1000))
        return changed

    def _disruption(self, p: Point) -> list[tuple[Family, Labels]]:
        fields = dict(p.fields)
        base = self._labels(p, "journey", "region", "agent")
        hidden = "true" if fields.get("uptime_ok") else "false"
        # The journey's alert.severity as the Alertmanager sink labels it: rules.yml raises the same alert from it.
        severity = str(fields.get("severity") or DEFAULT_SEVERITY)
        opened = self.values[DISRUPTION_OPEN]
        changed = [self._set(DISRUPTION_OPEN, labels, 0.0)
                   for labels in [k for k in opened if _without(k, "hidden_from_uptime", "severity") == base]]
        where = (p.tag("journey") or "", p.tag("region") or "")
        if p.tag("state") == "open":
            labels = _with(_with(base, "hidden_from_uptime", hidden), "severity", severity)
            changed = [c for c in changed if c[1] != labels]
            changed.append(self._set(DISRUPTION_OPEN, labels, 1.0))
            changed.append(self._inc(DISRUPTION_HIDDEN, base, 0.0))
            self._hidden_closed.setdefault(base, 0.0)
            self._open[where] = base
            changed.append(self._inc(DISRUPTION_SECONDS, base, 0.0))
            self._open_since[base] = int(fields.get("opened_ms", p.time_ms))
        else:
            # The time uptime monitoring stayed green while it was open (also when uptime failed later on).
            self._open.pop(where, None)
            closed = self._hidden_closed[base] = (self._hidden_closed.get(base, 0.0)
                                                  + float(fields.get("hidden_minutes", 0.0)) * 60)
            changed.append(self._raise(DISRUPTION_HIDDEN, base, closed))
            opened_ms = self._open_since.pop(base, p.time_ms)
            seconds = fields.get("duration_s", (p.time_ms - opened_ms) / 1000)
            total = self._open_closed[base] = self._open_closed.get(base, 0.0) + max(0.0, float(seconds))
            changed.append(self._raise(DISRUPTION_SECONDS, base, total))
        return changed

    def _open_so_far(self, p: Point) -> list[tuple[Family, Labels]]:
        """A final run of a journey × region with an open disruption: qos_disruption_seconds_total
        becomes closed + (this run's start - the opening), so it rises with every run on both paths
        (scrape and remote write) and ends at the close's `duration_s`; it never falls."""
        base = self._open.get((p.tag("journey") or "", p.tag("region") or ""))
        opened = self._open_since.get(base) if base is not None else None
        if base is None or opened is None:
            return []
        so_far = self._open_closed.get(base, 0.0) + max(0, p.time_ms - opened) / 1000
        return [self._raise(DISRUPTION_SECONDS, base, so_far)]

    def _raise(self, family: Family, labels: Labels, value: float) -> tuple[Family, Labels]:
        """A counter set to `value` unless it already showed more: a counter never goes down."""
        self.values[family][labels] = max(float(self.values[family].get(labels, 0.0)), value)  # type: ignore[arg-type]
        return family, labels

    def hidden_live(self, open_hidden: Iterable[tuple[str, str, float]]) -> None:
        """Count the hidden time of disruptions still open, as of now, into qos_disruption_hidden_seconds.

        `open_hidden` is (journey, region, hidden ms so far) per open disruption (the evaluator's
        `hidden_now`). The counter shows closed + open and never falls: if a close counts a little
        less than was shown (the closing run started before the read), it holds until the sum passes.
        """
        for journey, region, hidden_ms in open_hidden:
            base = self._open.get((journey, region))
            if base is not None and base in self.values[DISRUPTION_HIDDEN]:
                self._raise(DISRUPTION_HIDDEN, base, self._hidden_closed.get(base, 0.0) + hidden_ms / 1000)

    def retain(self, journeys: set[str]) -> None:
        """Forget every series of a journey no longer configured (a reload removed it)."""
        for series in self.values.values():
            for labels in [k for k in series if dict(k).get("journey") not in journeys]:
                del series[labels]
        for labels in [k for k in self._hidden_closed if dict(k).get("journey") not in journeys]:
            del self._hidden_closed[labels]
        self._open = {k: v for k, v in self._open.items() if k[0] in journeys}
        for kept in (self._open_since, self._open_closed):
            for labels in [k for k in kept if dict(k).get("journey") not in journeys]:
                del kept[labels]

    def sample_values(self, family: Family, labels: Labels) -> list[float]:
        """The values of one series' samples, in the order `samples` yields them."""
        value = self.values[family][labels]
        if isinstance(value, Histogram):
            return [*itertools.accumulate(value.counts or [0] * (len(value.buckets) + 1), initial=None),
                    value.total, value.count]
        return [value]

    def samples(self, family: Family, labels: Labels, time_ms: int) -> Iterator[Sample]:
        """The samples of one series (a histogram: every bucket, the sum and the count)."""
        value = self.values[family][labels]
        if isinstance(value, Histogram):
            for le, n in value.cumulative():
                yield Sample(family.name + "_bucket", tuple(sorted((*labels, ("le", le)))), float(n), time_ms)
            yield Sample(family.name + "_sum", labels, value.total, time_ms)
            yield Sample(family.name + "_count", labels, float(value.count), time_ms)
        else:
            yield Sample(family.sample_name, labels, value, time_ms)
