"""The `browser` step kind as the loader and the schema see it: a list of one-key actions, parsed
once into frozen specs, and what the kind declares (it yields the page, needs a browser).

    browser:                                 browser:
      - goto: "{{ base }}/checkout"            actions: [...]
      - click: "text=Pay"                      fail_on_http_errors: true

Every mistake is a located problem (unknown action with a did-you-mean and the valid list, a
missing selector, a bad state), reported with all the others at load. Nothing here imports
Playwright: `BrowserKind.probe()` does, at run time.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from probes.browser.net import BROWSER_NET_KEYS
from probes.common.netspec import NetSpec, parse_net
from probes.common.schemas import NET
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.templating import TEMPLATE, has_template
from qos_agent.language.text import shown
from qos_agent.model import Location, Sends
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import BOOL, DURATION, Schema, enum, obj
from qos_agent.plugins.steps import StepKind, Yields

VERBS = ("goto", "click", "fill", "select", "press", "wait_for", "expect_text", "expect_url",
         "screenshot", "extract")
EXPECT_VERBS = frozenset({"expect_text", "expect_url"})
STATES = ("visible", "hidden", "attached", "detached")
WAIT_UNTIL = ("load", "domcontentloaded", "networkidle", "commit")
# always: record and keep every run's trace; on-failure: record every run, keep it when a step fails;
# on-retry (default): record only a retried attempt, or the journey's next run after a failure; off: never.
TRACE_MODES = ("on-retry", "on-failure", "always", "off")
SHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

# For each verb: the keys of its mapping form, the required ones, and the key its string form fills.
ACTION_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    "goto": (("url", "wait_until", "timeout"), ("url",), "url"),
    "click": (("selector", "timeout"), ("selector",), "selector"),
    "fill": (("selector", "value", "timeout"), ("selector", "value"), None),
    "select": (("selector", "value", "timeout"), ("selector", "value"), None),
    "press": (("selector", "key", "timeout"), ("selector", "key"), None),
    "wait_for": (("selector", "state", "timeout"), ("selector",), "selector"),
    "expect_text": (("selector", "text", "regex", "timeout"), ("selector",), None),
    "expect_url": (("url", "regex", "timeout"), (), "url"),
    "screenshot": (("name", "full_page", "timeout"), ("name",), "name"),
    "extract": (("selector", "name", "timeout"), ("selector", "name"), None),
}
_EXAMPLES = {
    "goto": 'goto: "{{ base }}/login"',
    "click": 'click: "text=Pay"',
    "fill": 'fill: {selector: "#card", value: "4242"}',
    "select": 'select: {selector: "#plan", value: "pro"}',
    "press": 'press: {selector: "#q", key: Enter}',
    "wait_for": 'wait_for: {selector: ".done", state: visible}',
    "expect_text": 'expect_text: {selector: ".status", text: "Paid"}',
    "expect_url": 'expect_url: {regex: "/dashboard$"}',
    "screenshot": "screenshot: cart",
    "extract": 'extract: {selector: "#order", name: order_id}',
}


@dataclass(frozen=True, slots=True)
class Action:
    """One action. `value` is the verb's main argument: url, fill/select value, key, text, name."""

    index: int  # 1-based, as messages name it
    verb: str
    location: Location
    selector: str = ""
    value: str = ""
    regex: str | None = None
    state: str = "visible"
    wait_until: str = "load"
    full_page: bool = False
    timeout_s: float | None = None

    @property
    def label(self) -> str:
        """`click "text=Pay"`: how messages name the action (templates unrendered: no secrets)."""
        target = self.selector or self.regex or self.value
        return f'{self.verb} "{target}"' if target else self.verb


@dataclass(frozen=True, slots=True)
class BrowserSpec:
    actions: tuple[Action, ...]
    fail_on_http_errors: bool = False
    net: NetSpec = field(default_factory=NetSpec)  # proxy, client certificates (browser_net.py)
    verify_tls: bool = True
    mask: tuple[str, ...] = ()  # step key `mask: [selector, ...]`: hidden in this step's screenshots
    trace: str = "on-retry"  # one of TRACE_MODES; the run's first browser step decides for the run

    def provides(self) -> set[str]:
        return {a.value for a in self.actions if a.verb == "extract"}


def parse_mask(step: Node, problems: Problems) -> tuple[str, ...]:
    """`mask: ["#balance", ".api-key"]`: selectors Playwright paints over in screenshots."""
    node = step.get("mask")
    if node is None:
        return ()
    items = node.value if node.is_list else None
    if not items or not all(isinstance(i.value, str) and i.value.strip() for i in items):
        problems.add(node.loc, "'mask' must be a non-empty list of selectors",
                     'write mask: ["#balance", ".api-key"]')
        return ()
    return tuple(str(i.value) for i in items)


def parse_browser(step: Node, problems: Problems, base: Path | None = None) -> BrowserSpec:
    spec = _parse_actions(step, problems, base)
    mask = parse_mask(step, problems)
    return dataclasses.replace(spec, mask=mask) if mask else spec


def _parse_actions(step: Node, problems: Problems, base: Path | None) -> BrowserSpec:
    node = step.get("browser")
    if node is None:
        return BrowserSpec(())
    fail_on_http_errors = False
    net = NetSpec()
    verify_tls = True
    trace = "on-retry"
    items = node
    if node.is_map:
        r = Reader(node, problems, ("actions", "fail_on_http_errors", "trace", *BROWSER_NET_KEYS), "browser",
                   required=("actions",))
        fail_on_http_errors = r.bool("fail_on_http_errors", False)
        net = parse_net(r, problems, base or Path.cwd())
        verify_tls = r.bool("verify_tls", True)
        trace_node = r.get("trace")
        # YAML 1.1 reads a bare `off` as false.
        trace = "off" if trace_node is not None and trace_node.value is False else r.choice(
            "trace", TRACE_MODES, "on-retry")
        items = r.get("actions") or Node([], node.loc)
    if not items.is_list or not items.value:
        problems.add(items.loc, "'browser' needs a non-empty list of actions",
                     "write e.g. browser: [{goto: \"{{ base }}/\"}, {click: \"text=Pay\"}]")
        return BrowserSpec((), fail_on_http_errors, trace=trace)
    actions = []
    for i, item in enumerate(items.value, start=1):
        action = _action(i, item, problems)
        if action is not None:
            actions.append(action)
    return BrowserSpec(tuple(actions), fail_on_http_errors, net, verify_tls, trace=trace)


def _action(index: int, item: Node, problems: Problems) -> Action | None:
    if not item.is_map or len(item.value) != 1:
        problems.add(item.loc, f"browser action {index} must be a mapping with one action",
                     "write e.g. - click: \"text=Pay\"; valid: " + ", ".join(VERBS))
        return None
    verb, arg = next(iter(item.value.items()))
    if verb not in ACTION_KEYS:
        hint = suggest(verb, VERBS)
        hint = hint if hint.startswith("valid") else f"{hint} valid: {', '.join(VERBS)}"
        problems.add(item.key_loc(verb), f"unknown browser action '{verb}'", hint)
        return None
    keys, required, short = ACTION_KEYS[verb]
    if not arg.is_map:
        if short is None or not isinstance(arg.value, str | int | float) or isinstance(arg.value, bool) \
                or arg.value == "":
            problems.add(arg.loc, f"browser action '{verb}' needs {' and '.join(required)}",
                         f"write {_EXAMPLES[verb]}")
            return None
        arg = Node({short: arg}, arg.loc, {short: arg.loc})
    r = Reader(arg, problems, keys, f"browser action '{verb}'", required=required)
    if not r.ok:
        return None
    timeout = r.duration("timeout", 0.0) if r.has("timeout") else None
    fields: dict[str, object] = {"index": index, "verb": verb, "location": item.loc, "timeout_s": timeout}
    if "selector" in keys:
        fields["selector"] = r.str("selector", "")
    if verb == "goto":
        fields["value"] = r.str("url", "")
        fields["wait_until"] = r.choice("wait_until", WAIT_UNTIL, "load")
    elif verb in ("fill", "select"):
        fields["value"] = _text(r, "value", allow_empty=verb == "fill")
    elif verb == "press":
        fields["value"] = r.str("key", "")
    elif verb == "wait_for":
        fields["state"] = r.choice("state", STATES, "visible")
    elif verb in EXPECT_VERBS:
        main = "text" if verb == "expect_text" else "url"
        given = [k for k in (main, "regex") if r.has(k)]
        if len(given) != 1:
            problems.add(arg.loc, f"browser action '{verb}' needs exactly one of '{main}' or 'regex'",
                         f"write {_EXAMPLES[verb]}")
            return None
        if given[0] == "regex":
            fields["regex"] = _regex(r, arg)
        else:
            fields["value"] = _text(r, main, allow_empty=False)
    elif verb == "screenshot":
        fields["value"] = _name(r, "name", SHOT_NAME, "a file name of letters, digits, '.', '_', '-'")
        fields["full_page"] = r.bool("full_page", False)
    elif verb == "extract":
        fields["value"] = _name(r, "name", VAR_NAME, "a variable name such as order_id")
    return Action(**fields)  # type: ignore[arg-type]


def _text(r: Reader, key: str, allow_empty: bool) -> str:
    n = r.get(key)
    if n is None:
        return ""
    if isinstance(n.value, str) and (n.value or allow_empty):
        return n.value
    if isinstance(n.value, int | float) and not isinstance(n.value, bool):
        return str(n.value)
    r.bad(key, n, "must be a string", f'write {key}: "text"')
    return ""


def _regex(r: Reader, arg: Node) -> str:
    text = _text(r, "regex", allow_empty=False)
    n = r.get("regex")
    if text and n is not None and not has_template(text):
        try:
            re.compile(text)
        except re.error as e:
            r.bad("regex", n, f"is not a valid regular expression: {e}", "fix the pattern")
    return text


def _name(r: Reader, key: str, pattern: re.Pattern[str], what: str) -> str:
    value = r.str(key, "")
    n = r.get(key)
    if n is not None and value and (TEMPLATE.search(value) or not pattern.fullmatch(value)):  # `$` allows a "\n"
        r.bad(key, n, f"is {shown(value)}, not {what}", "no '{{ }}' here: names are fixed in the file")
        return ""
    return value


class BrowserKind(StepKind[BrowserSpec]):
    """Actions in real headless Chromium, measured as the customer sees the page (probes/browser/probe.py)."""

    kind: ClassVar[str] = "browser"
    runtime: ClassVar[str] = "probes.browser.probe:BrowserProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"mask"})
    yields: ClassVar[Yields] = Yields(body="the page's HTML (json reads the page's text)", headers=True,
                                      cookies=True)
    heavy: ClassVar[bool] = True

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> BrowserSpec:
        return parse_browser(step, problems, load.config_dir)

    @classmethod
    def provides(cls, spec: BrowserSpec) -> set[str]:
        return spec.provides()

    @classmethod
    def urls(cls, spec: BrowserSpec) -> list[str]:
        """The URLs its `goto`s open (templates): the journey's origins, for uptime per service."""
        return [a.value for a in spec.actions if a.verb == "goto"]

    @classmethod
    def sends(cls, spec: BrowserSpec) -> Sends:
        return Sends(urls=(*cls.urls(spec), *((spec.net.proxy,) if spec.net.proxy else ())))

    @classmethod
    def json_schema(cls) -> dict[str, Schema]:
        types: dict[str, Schema] = {"timeout": DURATION, "state": enum(STATES), "wait_until": enum(WAIT_UNTIL),
                                    "full_page": BOOL, "value": {"type": ["string", "number"]}}
        actions = []
        for verb, (verb_keys, required, short) in ACTION_KEYS.items():
            arg = obj(verb_keys, {k: types.get(k, {"type": "string"}) for k in verb_keys}, required=required)
            if short is not None:
                arg = {"anyOf": [{"type": ["string", "number"], "minLength": 1}, arg]}
            actions.append({"type": "object", "additionalProperties": False, "required": [verb],
                            "properties": {verb: arg}})
        action_list = {"type": "array", "minItems": 1, "items": {"oneOf": actions}}
        net_types = {k: v for k, v in {**NET, "verify_tls": BOOL}.items() if k in BROWSER_NET_KEYS}
        long_form = obj(("actions", "fail_on_http_errors", "trace", *BROWSER_NET_KEYS),
                        {"actions": action_list, "fail_on_http_errors": BOOL,
                         "trace": {"enum": [*TRACE_MODES, False]}, **net_types},
                        required=("actions",))
        return {"browser": {"anyOf": [action_list, long_form]},
                "mask": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                         "description": "selectors painted over in the step's screenshots"}}
