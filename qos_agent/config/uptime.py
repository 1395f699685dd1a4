"""Which uptime journeys a journey is compared with: the same service, not the whole region.

A journey's origins are scheme://host:port of the URLs its steps call, known at load (templates
rendered with the file's variables; a URL built from an extracted value is left out). The evaluator
compares a journey with the uptime journeys sharing one of its origins, or the one it names with
`uptime: NAME`.
"""

from __future__ import annotations

from yarl import URL

from qos_agent.language.nodes import Node, Problems, suggest
from qos_agent.language.templating import has_template, render
from qos_agent.model import Journey, JourneyKind, Step
from qos_agent.plugins import registry


def origins_of(steps: list[Step], variables: dict[str, str]) -> tuple[str, ...]:
    """scheme://host:port of every URL the steps call that is known at load."""
    rendered = {k: render(v, variables) for k, v in variables.items()}
    out: set[str] = set()
    for step in steps:
        templates = registry.step_kind(step.kind).urls(step.spec) if step.spec is not None else []
        for template in templates:
            text = render(template, rendered)
            if has_template(text):
                continue
            try:
                url = URL(text)
            except ValueError:
                continue
            if url.scheme and url.host and url.port is not None:
                out.add(f"{url.scheme}://{url.host}:{url.port}")
    return tuple(sorted(out))


def check_uptime_refs(refs: list[tuple[str, Node]], journeys: list[Journey], problems: Problems) -> None:
    """Each `uptime: NAME` names a `kind: uptime` journey of the file; never on an uptime journey."""
    by_name = {j.name: j for j in journeys}
    uptime = sorted(j.name for j in journeys if j.kind is JourneyKind.UPTIME)
    for name, node in refs:
        journey = by_name.get(name)
        if journey is None:
            continue
        if journey.kind is JourneyKind.UPTIME:
            problems.add(node.loc, f"'uptime' on the uptime journey '{name}'",
                         "name the uptime journey on the journeys compared with it")
        elif journey.uptime not in uptime:
            fix = suggest(journey.uptime, uptime) if uptime else "add a journey with kind: uptime, or remove this key"
            problems.add(node.loc, f"no uptime journey named '{journey.uptime}'", fix)


def uptime_refs(journey: Journey, journeys: dict[str, Journey]) -> tuple[str, ...]:
    """The uptime journeys this journey's disruptions are compared with (may be none)."""
    if journey.kind is JourneyKind.UPTIME:
        return ()
    if journey.uptime:
        return (journey.uptime,)
    mine = set(journey.origins)
    return tuple(sorted(j.name for j in journeys.values()
                        if j.kind is JourneyKind.UPTIME and mine & set(j.origins)))
