"""The journey series on `/metrics`: every result the Prometheus way (issue 15's contract).

A prometheus_client Collector over a `JourneySeries` (qos_agent/sinks/series.py), fed with the same
points the sinks get (results -> points, plus the evaluator's disruption points), so a scrape and the
`prometheus_remote_write` sink show the same samples. Besides the results it exposes each journey's
objective, `qos_journey_slo_success_ratio`, which the error-budget rules of deploy/prometheus/rules.yml
divide by. A reload that removes a journey removes its series (`configure`).

`qos_disruption_hidden_seconds_total` is true when read: at every scrape the evaluator's open
disruptions add the hidden time so far (`hidden_now`), so it rises during a hidden disruption.

`render` writes the same families as `collect` in the text format directly, with each series'
label string made once: at thousands of histogram samples prometheus_client's generic exposition
(label-name validation and escaping per sample) cost ~10x more per scrape (docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from qos_agent.delivery.points import points_of
from qos_agent.model import Journey, JourneyResult, Point
from qos_agent.ops.openmetrics import exemplar_text
from qos_agent.sinks.histogram import Histogram
from qos_agent.sinks.labels import DEFAULT_SEVERITY
from qos_agent.sinks.series import FAMILIES, Family, JourneySeries, Labels

# (journey, region, hidden ms so far) of each open disruption at a unix time in ms: Evaluator.hidden_now.
HiddenNow = Callable[[int], Iterable[tuple[str, str, float]]]
SLO_SUCCESS = "qos_journey_slo_success_ratio"
SLO_LATENCY = "qos_journey_slo_latency_seconds"
ALERT_INFO = "qos_journey_alert_info"


class JourneyMetrics(Collector):
    """Register once in the agent's registry; `observe` every batch, `configure` at start and reload."""

    def __init__(self) -> None:
        self.series = JourneySeries()
        self.journeys: tuple[Journey, ...] = ()
        self._names: frozenset[str] | None = None  # the configured journeys' names; None: not configured yet
        self.region = ""
        self.agent = ""
        self._label_text: dict[Labels, str] = {}  # a series' labels as the text format writes them
        # Read at every scrape, so qos_disruption_hidden_seconds_total rises while a hidden disruption
        # is still open, not only when it closes (the agent sets it to its evaluator's `hidden_now`).
        self.hidden_now: HiddenNow | None = None

    def configure(self, journeys: Iterable[Journey], region: str, agent: str) -> None:
        self.journeys = tuple(journeys)
        self.region, self.agent = region, agent
        self._names = frozenset(j.name for j in self.journeys)
        self.series.retain(set(self._names))
        self._label_text.clear()

    def observe(self, results: Sequence[JourneyResult], disruptions: Sequence[Point] = ()) -> None:
        """A run still in flight when a reload removed its journey ends after `configure` forgot the
        journey's series: it must not bring them back (they would stay until the next restart)."""
        names = self._names
        if names is not None:
            results = [r for r in results if r.journey in names]
            disruptions = [p for p in disruptions if p.tag("journey") in names]
        self.series.observe_all(points_of(results))
        self.series.observe_all(disruptions)

    def _read_hidden(self, now_ms: int | None) -> None:
        if self.hidden_now is not None:
            self.series.hidden_live(self.hidden_now(int(time.time() * 1000) if now_ms is None else now_ms))

    def collect(self) -> Iterator[Metric]:
        self._read_hidden(None)
        for family in FAMILIES:
            series = self.series.values[family]
            names = sorted({k for labels in series for k, _ in labels})
            metric: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
            if family.type == "counter":
                metric = CounterMetricFamily(family.name, family.doc, labels=names)
            elif family.type == "gauge":
                metric = GaugeMetricFamily(family.name, family.doc, labels=names)
            else:
                metric = HistogramMetricFamily(family.name, family.doc, labels=names)
            for labels, value in sorted(series.items()):
                values = _values(labels, names)
                if isinstance(metric, HistogramMetricFamily):
                    assert isinstance(value, Histogram)
                    metric.add_metric(values, list(value.cumulative()), value.total)
                else:
                    assert not isinstance(value, Histogram)
                    metric.add_metric(values, value)
            yield metric
        yield from self._slo()

    def _slo(self) -> Iterator[Metric]:
        labels = ["journey", "region", "agent"]
        success = GaugeMetricFamily(SLO_SUCCESS, "The journey's success objective (slo.success), 0..1", labels=labels)
        latency = GaugeMetricFamily(SLO_LATENCY, "The journey's latency objective (slo.latency), when set",
                                    labels=labels)
        # The journey's alert.severity, as its Alertmanager alerts carry it: rules.yml's journey alerts join it.
        alert = GaugeMetricFamily(ALERT_INFO, "The journey's alert settings as labels (value always 1)",
                                  labels=[*labels, "severity"])
        for j in self.journeys:
            success.add_metric([j.name, self.region, self.agent], j.slo.success)
            if j.slo.latency_s is not None:
                latency.add_metric([j.name, self.region, self.agent], j.slo.latency_s)
            severity = (j.alert.severity if j.alert is not None else "") or DEFAULT_SEVERITY
            alert.add_metric([j.name, self.region, self.agent, severity], 1)
        yield success
        yield latency
        yield alert


    def render(self, now_ms: int | None = None, openmetrics: bool = False) -> bytes:
        """The text exposition (format 0.0.4) of every family `collect` yields, in the same order;
        `now_ms` (default: the clock) is when the open disruptions' hidden time is counted to.
        `openmetrics`: the same as OpenMetrics 1.0 (a counter's family named without `_total`, each
        duration bucket with its exemplar), without the closing `# EOF` the whole page ends with."""
        self._read_hidden(now_ms)
        out: list[str] = []
        for family in FAMILIES:
            self._render_family(out, family, openmetrics)
        for metric in self._slo():
            out.append(f"# HELP {metric.name} {metric.documentation}\n# TYPE {metric.name} gauge\n")
            out.extend(f"{metric.name}{self._labels(tuple(sorted(s.labels.items())))} {_num(s.value)}\n"
                       for s in metric.samples)
        return "".join(out).encode()

    def _render_family(self, out: list[str], family: Family, openmetrics: bool = False) -> None:
        name = family.sample_name if family.type == "counter" else family.name
        meta = family.name if openmetrics else name  # OpenMetrics names a counter's family without _total
        out.append(f"# HELP {meta} {family.doc}\n# TYPE {meta} {family.type}\n")
        for labels, value in self.series.values[family].items():
            text = self._labels(labels)
            if isinstance(value, Histogram):
                inner = text[:-1] + "," if text else "{"
                if openmetrics and value.exemplars:
                    out.extend(f'{family.name}_bucket{inner}le="{le}"}} {n}.0{exemplar_text(ex)}\n'
                               for (le, n), ex in zip(value.cumulative(), value.exemplars, strict=True))
                else:
                    out.extend(f'{family.name}_bucket{inner}le="{le}"}} {n}.0\n' for le, n in value.cumulative())
                out.append(f"{family.name}_count{text} {value.count}.0\n{family.name}_sum{text} {_num(value.total)}\n")
            else:
                out.append(f"{name}{text} {_num(value)}\n")

    def _labels(self, labels: Labels) -> str:
        text = self._label_text.get(labels)
        if text is None:
            text = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}" if labels else ""
            if len(self._label_text) > 100_000:
                self._label_text.clear()
            self._label_text[labels] = text
        return text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _values(labels: Labels, names: list[str]) -> list[str]:
    """Label values in `names` order ('' for a label this series lacks: the text format drops it)."""
    have = dict(labels)
    return [have.get(n, "") for n in names]
