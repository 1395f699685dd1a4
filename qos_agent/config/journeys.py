"""`journeys:`: each journey with its defaults applied (interval, timeouts, headers, disruption
rules), its tags, objective and alert settings checked, and its steps parsed by `StepParser`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from qos_agent.config.keys import ALERT_KEYS, DISRUPTION_KEYS, JOURNEY_KEYS, MIN_INTERVAL_S, NAME
from qos_agent.config.meaning import canonical, journey_digest
from qos_agent.config.metadata import journey_metadata
from qos_agent.config.steps import StepParser, tag_safe_name
from qos_agent.config.uptime import check_uptime_refs, origins_of
from qos_agent.language import safety
from qos_agent.language.nodes import Node, Problems, Reader
from qos_agent.language.templating import names_in
from qos_agent.language.text import shown as quoted
from qos_agent.model import AgentConfig, AlertSpec, DisruptionRules, Journey, JourneyKind, Location, Slo
from qos_agent.plugins.context import LoadContext
from qos_agent.sinks.labels import check_tag_names


class JourneyParser:
    def __init__(self, problems: Problems, load: LoadContext) -> None:
        self.problems = problems
        self.load = load
        self.step_parser = StepParser(problems, load)
        self.uptime_refs: list[tuple[str, Node]] = []  # (journey, its `uptime:` node)

    @property
    def secrets(self) -> list[str]:
        """Credentials the file writes literally (an Authorization header's value): masked from load."""
        return self.step_parser.secrets

    def journeys(self, node: Node | None, agent: AgentConfig, defaults: Reader, variables: dict[str, str]
                 ) -> list[Journey]:
        if node is None:
            return []
        if not node.is_list or not node.value:
            self.problems.add(node.loc, "'journeys' must be a non-empty list", "add '- name: ...' items with steps")
            return []
        seen: dict[str, Location] = {}
        out = []
        # What every journey is built from besides its own mapping (config/meaning.py).
        shared = canonical([agent.interval_s, defaults.node.plain(), variables, str(self.load.config_dir)])
        for item in node.value:
            journey = self.journey(item, agent, defaults, variables, shared)
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
                shared: str = "") -> Journey | None:
        r = Reader(node, self.problems, JOURNEY_KEYS, "a journey", required=("name", "steps"))
        if not r.ok:
            return None
        name = tag_safe_name(r, "journey", self.problems)
        own_vars = r.str_map("variables")
        self.check_variable_refs(r.get("variables"), set(global_vars))
        tags = r.str_map("tags")
        safety.check_tags(r.get("tags"), self.problems)
        safety.check_headers(r.get("headers"), self.problems)
        check_tag_names(r.get("tags"), self.problems)  # reserved and colliding label names (qos_agent/sinks/labels.py)
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
        steps = self.step_parser.steps(r.get("steps"), name, step_timeout, scope, headers, {**global_vars, **own_vars})
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
            traceparent=r.bool("traceparent", agent.traceparent),
            origins=origins_of(steps, {**global_vars, **own_vars}),
            uptime=r.str("uptime", ""),
            meaning=journey_digest(shared, node.plain()),
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

    def check_variable_refs(self, node: Node | None, scope: set[str]) -> None:
        """Variables may refer to variables of an outer scope (global from journey), not to themselves."""
        if node is None:
            return
        for text, loc in node.strings():
            for ref in names_in(text):
                if ref not in scope:
                    self.problems.add(loc, f"'{{{{ {ref} }}}}' refers to an unknown variable",
                                      "a journey variable may use top-level variables only")
