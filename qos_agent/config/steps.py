"""A journey's `steps:`: each step's kind found in the registry, its part parsed by the kind, and
what the core gives every kind checked here: `extract:` against what the kind yields, `{{ name }}`
against the variables in scope, and the credential-bearing values the runner learns secrets from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from qos_agent.config.keys import EXTRACT_KEYS, EXTRACT_SOURCES, STEP_KEYS
from qos_agent.language import safety
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.templating import names_in
from qos_agent.language.text import shown
from qos_agent.model import Extraction, Step
from qos_agent.plugins import registry
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.steps import Yields
from qos_agent.steps.jsondoc import compile_jsonpath
from qos_agent.steps.masking import learn_sources


def choices(word: str, valid: list[str]) -> str:
    """A did-you-mean hint that always lists the valid names too."""
    hint = suggest(word, valid)
    return hint if hint.startswith("valid") else f"{hint} valid: {', '.join(valid)}"


def tag_safe_name(r: Reader, what: str, problems: Problems) -> str:
    """The `name:` of a journey or step: it becomes a tag value, so only safe characters."""
    value = r.str("name", "")
    node = r.get("name")
    if node is not None and value and not safety.name_ok(value):
        problems.add(node.loc, f"{what} name {shown(value)} has characters that cannot be a tag value here",
                     f"use {safety.NAME_RULE}")
    return value


class StepParser:
    """Parses one journey's steps; `secrets` collects credentials written literally (masked from load)."""

    def __init__(self, problems: Problems, load: LoadContext) -> None:
        self.problems = problems
        self.load = load
        self.secrets: list[str] = []

    def steps(self, node: Node | None, journey: str, timeout: float, scope: set[str],
              headers: Mapping[str, str], variables: Mapping[str, str]) -> list[Step]:
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
            step = self.step(item, timeout, headers, variables)
            if step is None:
                continue
            if step.name in seen:
                self.problems.add(step.location, f"step name '{step.name}' is used twice in journey '{journey}'",
                                  "give each step its own name")
            seen.add(step.name)
            parsed.append((item, step))
            for var in self.provided(step):
                later.setdefault(var, step.name)
        self.check_refs(parsed, journey, scope, later)
        return [s for _, s in parsed]

    def check_refs(self, parsed: list[tuple[Node, Step]], journey: str, scope: set[str],
                   later: dict[str, str]) -> None:
        """Every `{{ name }}` is in scope: a variable, or extracted by an earlier step."""
        known = set(scope)
        for item, step in parsed:
            # A probe's own actions may use what an earlier action of the same step extracted
            # (a browser `extract` then `fill`); `extract:` values exist only after the step.
            here = known | self.kind_provided(step)
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

    def provided(self, step: Step) -> set[str]:
        return {e.name for e in step.extract} | self.kind_provided(step)

    @staticmethod
    def kind_provided(step: Step) -> set[str]:
        return registry.step_kind(step.kind).provides(step.spec) if step.spec is not None else set()

    def step(self, node: Node, timeout: float, headers: Mapping[str, str], variables: Mapping[str, str]
             ) -> Step | None:
        if not node.is_map:
            self.problems.add(node.loc, "a step must be a mapping", "write '- name: ...' then 'http: ...'")
            return None
        kind = self.kind_of(node)
        if kind is None:
            return None
        try:
            cls = registry.step_kind(kind)
        except registry.PluginError as e:  # a broken third-party plug-in: located at its use
            self.problems.add(node.key_loc(kind), e.what, e.fix)
            return None
        r = Reader(node, self.problems, (*STEP_KEYS, kind, *cls.step_keys), f"step ({kind})", required=("name",))
        spec = cls.from_config(node, self.problems, self.load)
        learn: tuple[tuple[str, str, str], ...] = ()
        if spec is not None:
            learn, known = learn_sources(cls.sends(spec), headers.items(), variables)
            self.secrets += known
        return Step(
            name=tag_safe_name(r, "step", self.problems),
            kind=kind,
            spec=spec,
            timeout_s=r.duration("timeout", timeout),
            location=node.loc,
            always_run=r.bool("always_run", False),
            degraded_latency_s=r.duration("degraded_latency", 0.0) if r.has("degraded_latency") else None,
            extract=self.extractions(r.get("extract"), kind, cls.yields),
            learn=learn,
            heavy=cls.heavy,
        )

    def kind_of(self, node: Node) -> str | None:
        """The step's one kind key, or None with the problem reported."""
        present = [k for k in node.value if k not in STEP_KEYS and k != "expect" and registry.is_probe_kind(k)]
        if len(present) > 1:
            self.problems.add(node.key_loc(present[1]), f"a step has one kind, this one has {' and '.join(present)}",
                              "split it into two steps")
            return None
        if not present:
            kinds = registry.probe_kinds()
            unknown = [k for k in node.value if k not in STEP_KEYS and k != "expect"]
            for key in unknown:
                self.problems.add(node.key_loc(key), f"unknown step kind '{key}'", choices(key, kinds))
            if not unknown:
                self.problems.add(node.loc, "this step has no kind", "add one of: " + ", ".join(kinds))
            return None
        return str(present[0])

    def extractions(self, node: Node | None, kind: str, yields: Yields) -> tuple[Extraction, ...]:
        if node is None:
            return ()
        if not yields.sources:
            self.problems.add(node.loc, f"{kind} steps yield nothing to extract from",
                              "remove 'extract:' (the kinds that yield values are listed in docs/journeys.md)")
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
                                  "one of: " + ", ".join(yields.sources))
                continue
            expr = r.str(given[0], "")
            if not self.source_ok(given[0], expr, r.get(given[0]) or source, kind, yields):
                continue
            out.append(Extraction(name=name, source=given[0], expr=expr, location=source.loc,
                                  secret=r.bool("secret", False)))
        return tuple(out)

    def source_ok(self, source: str, expr: str, node: Node, kind: str, yields: Yields) -> bool:
        """The kind yields what the source reads, and the expression is valid."""
        if source not in yields.sources:
            what = f"{yields.body}" if yields.body else "no body"
            self.problems.add(node.key_loc(source) if node.is_map else node.loc,
                              f"{kind} steps cannot extract with '{source}' (they yield {what})",
                              "use one of: " + ", ".join(yields.sources))
            return False
        if source == "field" and expr and expr not in yields.fields:
            self.problems.add(node.loc, f"{kind} steps report no field {shown(expr)}",
                              choices(expr, list(yields.fields)))
            return False
        if source == "json" and expr:
            try:
                compile_jsonpath(expr)
            except ValueError as e:
                self.problems.add(node.loc, f"invalid JSONPath {shown(expr)}: {e}",
                                  'write e.g. "$.token" or "$.items[0].id"')
                return False
        elif source == "regex" and expr:
            try:
                re.compile(expr)
            except re.error as e:
                self.problems.add(node.loc, f"invalid regular expression {shown(expr)}: {e}", "fix the pattern")
                return False
        return True
