"""A real Prometheus (Debian's 2.42) and its promtool for the tests, on 127.0.0.1 and a temp TSDB.

`PrometheusServer` writes its own prometheus.yml (scrape targets, rule files, 1 s intervals), starts
`prometheus` with `--web.enable-remote-write-receiver`, and can be stopped and started again on the
same port and data dir (an outage). Every wait is bounded; teardown kills only its own process.
Under CI=true a missing binary fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.components import needs
from tests.support.influx import _http, _Server, _wait_ready, free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
needs_prometheus = needs(PROMETHEUS is not None, "prometheus (Debian prometheus)")
needs_promtool = needs(PROMTOOL is not None, "promtool (Debian prometheus)")


def short_rules(path: Path, for_s: str = "1s") -> Path:
    """rules.yml with every `for:` shortened, so a test sees alerts fire within seconds."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_s
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class PrometheusServer(_Server):
    targets: Sequence[str] = ()  # host:port of agents' /metrics, one scrape job "qos-agent"
    rule_files: Sequence[Path] = ()
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # target -> extra target labels
    flags: Sequence[str] = ()  # more command-line flags, e.g. --enable-feature=exemplar-storage
    config_file: Path | None = None  # a prometheus.yml of the test's own (then targets, rule_files are unused)

    def _config(self) -> Path:
        if self.config_file is not None:
            return self.config_file
        conf = self.root / "prometheus.yml"
        groups = [{"targets": [t], "labels": self.labels.get(t, {})} for t in self.targets]
        doc: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{"job_name": "qos-agent", "static_configs": groups}] if groups else [],
        }
        conf.write_text(yaml.safe_dump(doc))
        return conf

    def start(self) -> None:
        assert PROMETHEUS is not None, "prometheus is not installed (scripts/install-system-deps.sh)"
        argv = [PROMETHEUS, f"--config.file={self._config()}", f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
                "--storage.tsdb.retention.time=1d", "--log.level=warn", *self.flags]
        self.proc = self._spawn(argv)
        _wait_ready(self.url + "/-/ready", 200, self.proc, self.root / "server.log", limit_s=60)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector ([] when empty); a PromQL error fails the test."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        status, body = _http("GET", self.url + "/api/v1/query?" + urllib.parse.urlencode(params))
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", (promql, body[:500])
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def query_range(self, promql: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}
        status, body = _http("GET", self.url + "/api/v1/query_range?" + urllib.parse.urlencode(params))
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", (promql, body[:500])
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        status, body = _http("GET", self.url + "/api/v1/alerts")
        assert status == 200, body[:500]
        alerts: list[dict[str, Any]] = json.loads(body)["data"]["alerts"]
        return alerts


__all__ = ["PROMTOOL", "RULES", "PrometheusServer", "free_port", "needs_prometheus", "needs_promtool",
           "short_rules"]
