"""journeys.yaml -> a frozen Config, validated whole before anything runs.

Every mistake is collected as `FILE:LINE:COL: what is wrong (how to fix)` and raised at once as a
ConfigError. Step kinds and exporter types come from the one registry, and each plug-in parses its
own part, so a third-party probe is validated exactly like a built-in one.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from qos_agent.config.metadata import KEYS as METADATA_KEYS
from qos_agent.config.metadata import TAG_FIXES, journey_metadata
from qos_agent.config.uptime import check_uptime_refs, origins_of
from qos_agent.errors import ConfigError
from qos_agent.language import safety
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.templating import names_in
from qos_agent.language.text import shown
from qos_agent.language.text import shown as quoted
from qos_agent.language.yamlload import MAX_BYTES, decode, load_nodes
from qos_agent.model import (
    RESERVED_TAGS,
    AgentConfig,
    AlertSpec,
    Config,
    DisruptionRules,
    ExporterConfig,
    Extraction,
    Journey,
    JourneyKind,
    Location,
    Slo,
    Step,
)
from qos_agent.plugins import registry
from qos_agent.plugins.protocols import LoadContext

TOP_KEYS = ("version", "agent", "defaults", "variables", "exporters", "journeys", "secrets")
AGENT_KEYS = ("region", "name", "interval", "concurrency", "browser_concurrency", "state_dir", "listen", "shard",
              "sink_stale_after", "max_loop_lag", "loop")
LOOPS = ("auto", "asyncio", "uvloop")
DEFAULT_KEYS = ("timeout", "retries", "headers", "journey_timeout", "disruption")
DISRUPTION_KEYS = ("open_after", "close_after", "window", "min_failures", "min_runs")
JOURNEY_KEYS = ("name", "description", "kind", "interval", "regions", "tags", "slo", "variables", "steps",
                "retries", "timeout", "headers", "disruption", "alert", "uptime", *METADATA_KEYS)
ALERT_KEYS = ("severity", "runbook")
STEP_KEYS = ("name", "timeout", "always_run", "degraded_latency", "extract")
EXTRACT_SOURCES = ("json", "header", "regex", "cookie")
EXTRACT_KEYS = (*EXTRACT_SOURCES, "secret")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # the schema's pattern; the loader uses safety.NAME
MIN_INTERVAL_S = 0.1  # a journey runs at most 10 times a second (docs/journeys.md, "Limits", says why not 1s)
DEFAULT_SQLITE = "sqlite"
MAX_READ = MAX_BYTES + 1  # read one byte more than allowed, so too large is seen without reading it all


def load_config(path: str | Path, env: Mapping[str, str] | None = None, region: str | None = None) -> Config:
    """Read, validate and freeze journeys.yaml; raise ConfigError with every located problem."""
    path = Path(path)
    problems = Problems()
    try:
        with path.open("rb") as f:
            data = f.read(MAX_READ)
    except FileNotFoundError:
        problems.add(Location(str(path), 1, 1), "file not found", "give the path of your journeys.yaml")
        raise ConfigError(problems.sorted()) from None
    except OSError as e:
        problems.add(Location(str(path), 1, 1), f"cannot read the file: {e.strerror or type(e).__name__}",
                     "check its permissions")
        raise ConfigError(problems.sorted()) from None
    return load_config_bytes(data, path, env, region)


def load_config_bytes(data: bytes, path: str | Path, env: Mapping[str, str] | None = None,
                      region: str | None = None) -> Config:
    """As load_config, from the file's bytes already read (a reload vets exactly the bytes it then loads)."""
    path = Path(path)
    file = str(path)
    problems = Problems()
    text = decode(data, file, problems)
    if text is None:
        raise ConfigError(problems.sorted())
    loaded = load_nodes(text, file, os.environ if env is None else env, problems)
    config = None
    if loaded.root is not None:
        config = _Parser(path, problems, region).parse(loaded.root, frozenset(loaded.secrets))
    if problems or config is None:
        raise ConfigError(problems.sorted())
    return replace(config, warnings=tuple(str(w) for w in problems.warnings))


class _Parser:
    def __init__(self, path: Path, problems: Problems, region: str | None) -> None:
        self.path = path
        self.problems = problems
        self.region_override = region
        self.uptime_refs: list[tuple[str, Node]] = []  # (journey, its `uptime:` node)

    def parse(self, root: Node, secrets: frozenset[str]) -> Config | None:
        top = Reader(root, self.problems, TOP_KEYS, "the file", required=("version", "journeys"))
        if not top.ok:
            return None
        version = top.get("version")
        if version is not None and (version.value != 1 or isinstance(version.value, bool)):
            self.problems.add(version.loc, f"unsupported version {shown(version.value)}", "write 'version: 1'")
        agent = self.agent(top.get("agent"))
        load = LoadContext(config_dir=self.path.parent.resolve(), state_dir=Path(agent.state_dir))
        defaults = Reader(top.get("defaults") or Node({}, root.loc), self.problems, DEFAULT_KEYS, "defaults")
        safety.check_headers(defaults.get("headers"), self.problems)
        for section in ("defaults", "variables", "journeys"):
            safety.check_templates(top.get(section), self.problems)
        variables = top.str_map("variables")
        self.check_variable_refs(top.get("variables"), set())
        self.secret_names(top.get("secrets"))
        journeys = self.journeys(top.get("journeys"), agent, defaults, variables, load)
        exporters = self.exporters(top.get("exporters"), load)
        return Config(path=str(self.path), agent=agent, journeys=tuple(journeys), exporters=tuple(exporters),
                      secrets=secrets)

    def secret_names(self, node: Node | None) -> None:
        """`secrets: [SHOP_PASSWORD, ...]`: environment variable names (yamlload reads them first)."""
        if node is None:
            return
        if not node.is_list:
            self.problems.add(node.loc, "'secrets' must be a list of environment variable names",
                              "write secrets: [SHOP_PASSWORD, API_KEY]")
            return
        for item in node.value:
            if not isinstance(item.value, str) or not ENV_NAME.match(item.value):
                self.problems.add(item.loc, f"{quoted(item.value)} is not an environment variable name",
                                  "list the names used as ${NAME}, e.g. SHOP_PASSWORD")

    # -- agent ------------------------------------------------------------------------------
    def agent(self, node: Node | None) -> AgentConfig:
        r = Reader(node or Node({}, Location(str(self.path), 1, 1)), self.problems, AGENT_KEYS, "agent")
        state_dir = Path(r.str("state_dir", ".qos-agent"))
        if not state_dir.is_absolute():
            state_dir = self.path.parent.resolve() / state_dir
        shard = None
        shard_node = r.get("shard")
        if shard_node is not None:
            m = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", shard_node.value) \
                if isinstance(shard_node.value, str) else None
            if m and 1 <= int(m.group(1)) <= int(m.group(2)):
                shard = (int(m.group(1)), int(m.group(2)))
            else:
                self.problems.add(shard_node.loc, f"'shard' is {shown(shard_node.value)}, not INDEX/COUNT",
                                  "write e.g. shard: 2/3 (this agent is the 2nd of 3 in its region)")
        listen_node = r.get("listen")
        if listen_node is not None and (listen_node.value is False or listen_node.value in ("", "off")):
            listen = ""  # `listen: off` (YAML reads a bare off as false) or empty: no endpoint
        else:
            listen = r.str("listen", "127.0.0.1:9469")
        if listen and listen_node is not None and not re.fullmatch(r"[\w.:\[\]-]*:\d{1,5}", listen):
            self.problems.add(listen_node.loc, f"'listen' is {shown(listen)}, not HOST:PORT",
                              "write e.g. listen: 127.0.0.1:9469")
        for key in ("region", "name"):
            value_node = r.get(key)
            why = safety.tag_value_problem(str(value_node.value)) if value_node is not None else ""
            if value_node is not None and why:
                self.problems.add(value_node.loc, f"agent {key} {shown(value_node.value)} {why}",
                                  safety.TAG_VALUE_RULE)
        max_lag = r.duration("max_loop_lag", 0.05)
        lag_node = r.get("max_loop_lag")
        if lag_node is not None and not 0.001 <= max_lag <= 60:
            self.problems.add(lag_node.loc, f"'max_loop_lag' is {shown(lag_node.value)}, outside 1ms..60s",
                              "write e.g. max_loop_lag: 50ms")
            max_lag = 0.05
        loop = r.choice("loop", LOOPS, "auto")
        loop_node = r.get("loop")
        if loop == "uvloop" and loop_node is not None and importlib.util.find_spec("uvloop") is None:
            self.problems.add(loop_node.loc, "'loop' is uvloop, but uvloop is not installed",
                              "pip install uvloop (Linux/macOS), or write loop: auto")
        return AgentConfig(
            region=self.region_override or r.str("region", "local"),
            name=r.str("name", socket.gethostname() or "agent"),
            interval_s=r.duration("interval", 60.0, minimum=MIN_INTERVAL_S),
            concurrency=r.int("concurrency", 50, minimum=1, maximum=10_000),
            browser_concurrency=r.int("browser_concurrency", 2, minimum=1, maximum=64),
            state_dir=str(state_dir),
            listen=listen,
            sink_stale_after_s=r.duration("sink_stale_after", 300.0),
            shard=shard,
            max_loop_lag_s=max_lag,
            loop=loop,
        )

    # -- journeys ---------------------------------------------------------------------------
    def journeys(self, node: Node | None, agent: AgentConfig, defaults: Reader, variables: dict[str, str],
                 load: LoadContext) -> list[Journey]:
        if node is None:
            return []
        if not node.is_list or not node.value:
            self.problems.add(node.loc, "'journeys' must be a non-empty list", "add '- name: ...' items with steps")
            return []
        seen: dict[str, Location] = {}
        out = []
        for item in node.value:
            journey = self.journey(item, agent, defaults, variables, load)
            if journey is None:
                continue
            if journey.name in seen:
                self.problems.add(journey.location, f"journey name '{journey.name}' is used twice "
                                  f"(first at line {seen[journey.name].line})", "give each journey its own name")
                continue
            seen[journey.name] = journey.location
            out.append(journey)
        check_uptime_refs(self.uptime_refs, out, self.problems)
        return out

    def journey(self, node: Node, agent: AgentConfig, defaults: Reader, global_vars: dict[str, str],
                load: LoadContext) -> Journey | None:
        r = Reader(node, self.problems, JOURNEY_KEYS, "a journey", required=("name", "steps"))
        if not r.ok:
            return None
        name = self.name(r, "journey")
        own_vars = r.str_map("variables")
        self.check_variable_refs(r.get("variables"), set(global_vars))
        tags = r.str_map("tags")
        safety.check_tags(r.get("tags"), self.problems)
        safety.check_headers(r.get("headers"), self.problems)
        for tag in tags:
            if tag in RESERVED_TAGS:
                self.problems.add(r.get("tags").key_loc(tag) if r.get("tags") else node.loc,  # type: ignore[union-attr]
                                  f"tag '{tag}' is set by the agent itself",
                                  TAG_FIXES.get(tag, "choose another tag name"))
        tags.update(journey_metadata(r, self.problems))
        slo = Slo()
        slo_node = r.get("slo")
        if slo_node is not None:
            s = Reader(slo_node, self.problems, ("success", "latency"), "slo")
            slo = Slo(success=s.ratio("success", 0.99),
                      latency_s=s.duration("latency", 0.0) if s.has("latency") else None)
        headers = {**defaults.str_map("headers"), **r.str_map("headers")}
        step_timeout = defaults.duration("timeout", 10.0)
        scope = set(global_vars) | set(own_vars)
        steps = self.steps(r.get("steps"), name, step_timeout, scope, load)
        default_jt = sum(s.timeout_s for s in steps) + 5.0
        if (uptime_node := r.get("uptime")) is not None:
            self.uptime_refs.append((name, uptime_node))
        journey_timeout = r.duration("timeout", defaults.duration("journey_timeout", default_jt))
        return Journey(
            name=name,
            steps=tuple(steps),
            interval_s=r.duration("interval", agent.interval_s, minimum=MIN_INTERVAL_S),
            location=node.loc,
            description=r.str("description", ""),
            kind=JourneyKind(r.choice("kind", [k.value for k in JourneyKind], JourneyKind.JOURNEY.value)),
            regions=r.str_list("regions"),
            tags=tuple(sorted(tags.items())),
            slo=slo,
            variables=tuple({**global_vars, **own_vars}.items()),
            retries=r.int("retries", defaults.int("retries", 0, maximum=10), maximum=10),
            timeout_s=journey_timeout,
            headers=tuple(headers.items()),
            disruption=self.disruption_rules(r.get("disruption"), self.disruption_rules(defaults.get("disruption"))),
            alert=self.alert(r.get("alert")),
            origins=origins_of(steps, {**global_vars, **own_vars}),
            uptime=r.str("uptime", ""),
        )

    def alert(self, node: Node | None) -> AlertSpec | None:
        """`alert: {severity, runbook}`: what alert sinks say about this journey's disruptions."""
        if node is None:
            return None
        r = Reader(node, self.problems, ALERT_KEYS, "alert")
        if not r.ok:
            return None
        severity, runbook = r.str("severity"), r.str("runbook")
        sev_node, book_node = r.get("severity"), r.get("runbook")
        if sev_node is not None and severity and not NAME.match(severity):
            self.problems.add(sev_node.loc, f"'severity' {quoted(severity)} has characters a label value should not",
                              "write e.g. severity: page (or critical, warning, info)")
        if book_node is not None and runbook:
            parts = urlsplit(runbook)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.problems.add(book_node.loc, f"'runbook' is not an http(s) URL: {quoted(runbook)}",
                                  "write e.g. runbook: https://wiki.example/checkout")
        return AlertSpec(severity=severity, runbook=runbook)

    def disruption_rules(self, node: Node | None, base: DisruptionRules | None = None) -> DisruptionRules:
        base = base or DisruptionRules()
        if node is None:
            return base
        r = Reader(node, self.problems, DISRUPTION_KEYS, "disruption")
        return DisruptionRules(
            open_after=r.int("open_after", base.open_after, minimum=1, maximum=100),
            close_after=r.int("close_after", base.close_after, minimum=1, maximum=100),
            window_s=r.duration("window", base.window_s),
            min_failures=r.int("min_failures", base.min_failures, minimum=1, maximum=10_000),
            min_runs=r.int("min_runs", base.min_runs, minimum=1, maximum=10_000),
        )

    def name(self, r: Reader, what: str) -> str:
        value = r.str("name", "")
        node = r.get("name")
        if node is not None and value and not safety.name_ok(value):
            self.problems.add(node.loc, f"{what} name {shown(value)} has characters that cannot be a tag value here",
                              f"use {safety.NAME_RULE}")
        return value

    def check_variable_refs(self, node: Node | None, scope: set[str]) -> None:
        """Variables may refer to variables of an outer scope (global from journey), not to themselves."""
        if node is None:
            return
        for text, loc in node.strings():
            for ref in names_in(text):
                if ref not in scope:
                    self.problems.add(loc, f"'{{{{ {ref} }}}}' refers to an unknown variable",
                                      "a journey variable may use top-level variables only")

    # -- steps ------------------------------------------------------------------------------
    def steps(self, node: Node | None, journey: str, timeout: float, scope: set[str],
              load: LoadContext) -> list[Step]:
        if node is None:
            return []
        if not node.is_list or not node.value:
            self.problems.add(node.loc, f"journey '{journey}' needs a non-empty 'steps' list",
                              "add '- name: ...' with an http: or browser: step")
            return []
        later: dict[str, str] = {}
        parsed: list[tuple[Node, Step]] = []
        seen: set[str] = set()
        for item in node.value:
            step = self.step(item, timeout, load)
            if step is None:
                continue
            if step.name in seen:
                self.problems.add(step.location, f"step name '{step.name}' is used twice in journey '{journey}'",
                                  "give each step its own name")
            seen.add(step.name)
            parsed.append((item, step))
            for var in self.provided(step):
                later.setdefault(var, step.name)
        known = set(scope)
        for item, step in parsed:
            # A probe's own actions may use what an earlier action of the same step extracted
            # (a browser `extract` then `fill`); `extract:` values exist only after the step.
            here = known | self.probe_provided(step)
            for text, loc in item.strings():
                for ref in names_in(text):
                    if ref in here:
                        continue
                    if ref in later:
                        why, fix = f"is extracted only by step '{later[ref]}', which runs later", "reorder the steps"
                    else:
                        why = f"is neither a variable of journey '{journey}' nor extracted by an earlier step"
                        fix = suggest(ref, known) if known else "define it under 'variables:' or 'extract:' it"
                    self.problems.add(loc, f"'{{{{ {ref} }}}}' {why}", fix)
            known |= self.provided(step)
        return [s for _, s in parsed]

    def provided(self, step: Step) -> set[str]:
        return {e.name for e in step.extract} | self.probe_provided(step)

    @staticmethod
    def probe_provided(step: Step) -> set[str]:
        return registry.probe_class(step.kind).provides(step.spec) if step.spec is not None else set()

    def step(self, node: Node, timeout: float, load: LoadContext) -> Step | None:
        if not node.is_map:
            self.problems.add(node.loc, "a step must be a mapping", "write '- name: ...' then 'http: ...'")
            return None
        present = [k for k in node.value if k not in STEP_KEYS and k != "expect" and registry.is_probe_kind(k)]
        if len(present) > 1:
            self.problems.add(node.key_loc(present[1]), f"a step has one kind, this one has {' and '.join(present)}",
                              "split it into two steps")
            return None
        if not present:
            kinds = registry.probe_kinds()
            unknown = [k for k in node.value if k not in STEP_KEYS and k != "expect"]
            for key in unknown:
                self.problems.add(node.key_loc(key), f"unknown step kind '{key}'", _choices(key, kinds))
            if not unknown:
                self.problems.add(node.loc, "this step has no kind", "add one of: " + ", ".join(kinds))
            return None
        kind = present[0]
        try:
            probe = registry.probe_class(kind)
        except registry.PluginError as e:  # a broken third-party plug-in: located at its use
            self.problems.add(node.key_loc(kind), e.what, e.fix)
            return None
        r = Reader(node, self.problems, (*STEP_KEYS, kind, *probe.step_keys), f"step ({kind})", required=("name",))
        spec = probe.from_config(node, self.problems, load)
        name = self.name(r, "step")
        return Step(
            name=name,
            kind=kind,
            spec=spec,
            timeout_s=r.duration("timeout", timeout),
            location=node.loc,
            always_run=r.bool("always_run", False),
            degraded_latency_s=r.duration("degraded_latency", 0.0) if r.has("degraded_latency") else None,
            extract=self.extractions(r.get("extract")),
        )

    def extractions(self, node: Node | None) -> tuple[Extraction, ...]:
        if node is None:
            return ()
        if not node.is_map:
            self.problems.add(node.loc, "'extract' must map names to sources",
                              'write extract: {token: {json: "$.token"}}')
            return ()
        out = []
        for name, source in node.items():
            r = Reader(source, self.problems, EXTRACT_KEYS, f"extract '{name}'")
            if not r.ok:
                continue
            given = [k for k in EXTRACT_SOURCES if r.has(k)]
            if len(given) != 1:
                self.problems.add(source.loc, f"extract '{name}' needs exactly one source",
                                  "one of: " + ", ".join(EXTRACT_SOURCES))
                continue
            expr = r.str(given[0], "")
            self.check_expression(given[0], expr, r.get(given[0]))
            out.append(Extraction(name=name, source=given[0], expr=expr, location=source.loc,
                                  secret=r.bool("secret", False)))
        return tuple(out)

    def check_expression(self, source: str, expr: str, node: Node | None) -> None:
        if node is None or not expr:
            return
        if source == "json":
            from jsonpath_ng.ext.parser import parse as jsonpath

            try:
                jsonpath(expr)
            except Exception as e:  # jsonpath-ng raises several types for a bad path
                self.problems.add(node.loc, f"invalid JSONPath {shown(expr)}: {e}",
                                  'write e.g. "$.token" or "$.items[0].id"')
        elif source == "regex":
            try:
                re.compile(expr)
            except re.error as e:
                self.problems.add(node.loc, f"invalid regular expression {shown(expr)}: {e}", "fix the pattern")

    # -- exporters --------------------------------------------------------------------------
    def exporters(self, node: Node | None, load: LoadContext) -> list[ExporterConfig]:
        if node is None:
            top = Location(str(self.path), 1, 1)
            default = Node({"type": Node(DEFAULT_SQLITE, top)}, top)
            return [ExporterConfig(DEFAULT_SQLITE, self.exporter_spec(DEFAULT_SQLITE, default, load), default.loc)]
        if not node.is_list:
            self.problems.add(node.loc, "'exporters' must be a list", "write '- type: sqlite' items")
            return []
        if not node.value:
            self.problems.add(node.loc, "'exporters' is empty: results would go nowhere",
                              "list a sink (- type: sqlite), or remove the key for the embedded SQLite store")
            return []
        out = []
        for item in node.value:
            type_node = item.get("type") if item.is_map else None
            if type_node is None:
                self.problems.add(item.loc, "an exporter needs a 'type'",
                                  "valid types: " + ", ".join(registry.exporter_types()))
                continue
            if not isinstance(type_node.value, str):
                self.problems.add(type_node.loc, f"an exporter's 'type' must be a name, not {shown(type_node.value)}",
                                  "valid types: " + ", ".join(registry.exporter_types()))
                continue
            kind = type_node.value
            if not registry.is_exporter_type(kind):
                self.problems.add(type_node.loc, f"unknown exporter type {shown(kind)}",
                                  _choices(kind, registry.exporter_types()))
                continue
            spec = self.exporter_spec(kind, item, load)
            # A plug-in may make several sinks of one entry with `split(spec) -> [spec, ...]` (an
            # Alertmanager HA pair: one durable queue per instance, so one down never holds back the other).
            for one in registry.exporter_class(kind).split(spec) if spec is not None else [spec]:
                out.append(ExporterConfig(kind, one, item.loc))
        return out

    def exporter_spec(self, kind: str, node: Node, load: LoadContext) -> Any:
        try:
            cls = registry.exporter_class(kind)
        except registry.PluginError as e:  # a broken third-party plug-in: located at its use
            self.problems.add(node.key_loc("type"), e.what, e.fix)
            return None
        return cls.from_config(node, self.problems, load)


def _choices(word: str, valid: list[str]) -> str:
    """A did-you-mean hint that always lists the valid names too."""
    hint = suggest(word, valid)
    return hint if hint.startswith("valid") else f"{hint} valid: {', '.join(valid)}"
