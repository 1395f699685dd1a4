"""The `script` step kind as the loader and the schema see it: a Python function where YAML ends.

    script: {path: steps/pay.py, function: pay, sets: [order_id]}     # path relative to journeys.yaml
    script: "steps/pay.py:pay"                                          # the short form

The file is read once, here: its bytes are what runs (`ScriptSpec.source`) and its digest is part of
the spec, so a changed script is a changed journey on reload (and `run --watch` watches the file:
`LoadContext.depends_on`). Importing it is vetted in a bounded child process (probes/script/vet.py):
a missing file, a module that fails to import, a missing function, one that is not `async def f(ctx)`
and a bad `sets` are located problems. Nothing here imports Playwright or aiohttp.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from probes.browser.config import TRACE_MODES, parse_mask
from probes.script.vet import MAX_SOURCE, Vetted, vet_script
from qos_agent.language.nodes import Node, Problems, Reader, suggest
from qos_agent.language.templating import TEMPLATE
from qos_agent.language.text import shown
from qos_agent.model import Location, Sends
from qos_agent.plugins.context import LoadContext
from qos_agent.plugins.schema_parts import TEXT, Schema, obj
from qos_agent.plugins.steps import StepKind

SCRIPT_KEYS = ("path", "function", "sets", "trace")
FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")  # what `{{ name }}` can refer to
MAX_SETS = 50
FIX_IMPORT = "fix the script: the agent imports it when it starts, see docs/scripts.md"


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    path: str  # as written, relative to journeys.yaml: how messages name the script
    file: str  # absolute: where it was read, and the file name in its tracebacks
    function: str
    sets: tuple[str, ...] = ()  # names the script sets in ctx.vars for later steps
    digest: str = ""  # sha256 of the source: a changed script is a changed journey
    source: bytes = field(default=b"", compare=False, repr=False)  # the bytes vetted are the bytes run
    trace: str = "on-retry"  # as a browser step's `trace:`, when this step opens the run's page
    mask: tuple[str, ...] = ()  # step key `mask:`: selectors painted over in its screenshots


def _form(node: Node, problems: Problems) -> tuple[str, str, Node, Node, Reader | None] | None:
    """(path, function, the node locating each, the mapping's Reader) of either form."""
    if isinstance(node.value, str):
        path, sep, function = node.value.rpartition(":")
        if not sep or not path.strip() or not function.strip():
            problems.add(node.loc, f"'script' is {shown(node.value)}, not FILE.py:FUNCTION",
                         'write script: "steps/pay.py:pay" or script: {path: steps/pay.py, function: pay}')
            return None
        return path.strip(), function.strip(), node, node, None
    r = Reader(node, problems, SCRIPT_KEYS, "script", required=("path", "function"))
    if not r.ok or not r.has("path") or not r.has("function"):
        return None
    path_node, function_node = r.get("path"), r.get("function")
    assert path_node is not None and function_node is not None
    return r.str("path", ""), r.str("function", ""), path_node, function_node, r


def _sets(r: Reader | None, problems: Problems) -> tuple[str, ...]:
    if r is None or r.get("sets") is None:
        return ()
    node = r.get("sets")
    assert node is not None
    names = r.str_list("sets")
    out: list[str] = []
    for name in names:
        if not VAR_NAME.fullmatch(name) or TEMPLATE.search(name):
            problems.add(node.loc, f"'sets' names {shown(name)}, not a variable name",
                         "write names such as order_id (letters, digits, '_', '.', '-')")
        elif name in out:
            problems.add(node.loc, f"'sets' names '{name}' twice", "list each name once")
        else:
            out.append(name)
    if len(out) > MAX_SETS:
        problems.add(node.loc, f"'sets' names {len(out)} variables, more than {MAX_SETS}",
                     "pass fewer values, or one JSON string")
        return tuple(out[:MAX_SETS])
    return tuple(out)


def _read(path: str, where: Location, load: LoadContext, problems: Problems) -> tuple[Path, bytes] | None:
    file = (load.config_dir / path).resolve()
    try:
        with file.open("rb") as f:
            source = f.read(MAX_SOURCE + 1)
    except FileNotFoundError:
        problems.add(where, f"script file {shown(path)} not found (looked for {file})",
                     "write the path relative to journeys.yaml")
        return None
    except OSError as e:
        problems.add(where, f"cannot read script file {shown(path)}: {e.strerror or type(e).__name__}",
                     "check the path and its permissions")
        return None
    if len(source) > MAX_SOURCE:
        problems.add(where, f"script file {shown(path)} is larger than {MAX_SOURCE // 1024} KiB",
                     "keep the step's function in a small module; import the rest from beside it")
        return None
    load.depends_on(file)
    return file, source


def _check_function(vetted: Vetted, path: str, function: str, where: Location, problems: Problems) -> None:
    found = vetted.functions.get(function)
    if found is None:
        coroutines = sorted(n for n, (kind, _) in vetted.functions.items() if kind == "async")
        hint = suggest(function, coroutines) if coroutines else f"write async def {function}(ctx): in {path}"
        problems.add(where, f"{path} has no function '{function}'", hint)
        return
    kind, takes_ctx = found
    if kind != "async":
        problems.add(where, f"'{function}' in {path} is not an async function",
                     f"write async def {function}(ctx): ...")
    elif not takes_ctx:
        problems.add(where, f"'{function}' in {path} must take one argument, the script context",
                     f"write async def {function}(ctx): ...")


def parse_script(step: Node, problems: Problems, load: LoadContext) -> ScriptSpec | None:
    node = step.get("script")
    if node is None:
        return None
    form = _form(node, problems)
    if form is None:
        return None
    path, function, path_node, function_node, r = form
    sets = _sets(r, problems)
    trace = "on-retry"
    if r is not None and r.get("trace") is not None:
        trace_node = r.get("trace")
        # YAML 1.1 reads a bare `off` as false.
        trace = "off" if trace_node is not None and trace_node.value is False else r.choice(
            "trace", TRACE_MODES, "on-retry")
    if not FUNCTION.fullmatch(function):
        problems.add(function_node.loc, f"function {shown(function)} is not a Python name",
                     "write the name of an async def in the script, e.g. function: pay")
        return None
    if not path:
        return None
    read = _read(path, path_node.loc, load, problems)
    if read is None:
        return None
    file, source = read
    digest = hashlib.sha256(source).hexdigest()
    vetted = vet_script(file, source, digest)
    if vetted.error:
        at = f" ({path}:{vetted.line})" if vetted.line else ""
        problems.add(path_node.loc, f"script {path} cannot be imported: {vetted.error}{at}", FIX_IMPORT)
        return None
    _check_function(vetted, path, function, function_node.loc, problems)
    return ScriptSpec(path=path, file=str(file), function=function, sets=sets, digest=digest, source=source,
                      trace=trace, mask=parse_mask(step, problems))


class ScriptKind(StepKind[ScriptSpec]):
    """A Python function with the run's page, HTTP session and variables (probes/script/probe.py)."""

    kind: ClassVar[str] = "script"
    runtime: ClassVar[str] = "probes.script.probe:ScriptProbe"
    step_keys: ClassVar[frozenset[str]] = frozenset({"mask"})
    heavy: ClassVar[bool] = True  # it may drive the run's page: a slot of agent.browser_concurrency

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> ScriptSpec | None:
        return parse_script(step, problems, load)

    @classmethod
    def provides(cls, spec: ScriptSpec) -> set[str]:
        return set(spec.sets)

    @classmethod
    def sends(cls, spec: ScriptSpec) -> Sends:
        """`ctx.http` sends the journey's headers: the core learns the secrets in them."""
        return Sends(journey_headers=True)

    @classmethod
    def json_schema(cls) -> dict[str, Schema]:
        long_form = obj(SCRIPT_KEYS, {
            "path": {**TEXT, "description": "the script file, relative to journeys.yaml"},
            "function": {"type": "string", "pattern": FUNCTION.pattern,
                         "description": "an `async def NAME(ctx)` in the file"},
            "sets": {"type": "array", "items": {"type": "string", "pattern": VAR_NAME.pattern}, "maxItems": MAX_SETS,
                     "description": "variables the script sets in ctx.vars for later steps"},
            "trace": {"enum": [*TRACE_MODES, False]},
        }, required=("path", "function"))
        short_form = {"type": "string", "pattern": r"^.+:[A-Za-z_][A-Za-z0-9_]*$",
                      "description": "FILE.py:FUNCTION, relative to journeys.yaml"}
        return {"script": {"anyOf": [short_form, long_form]},
                "mask": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                         "description": "selectors painted over in the step's screenshots"}}
