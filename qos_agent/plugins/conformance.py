"""Does a plug-in class keep its protocol? Checked when the registry loads it, and by a test over all.

mypy checks the built-in plug-ins statically (they subclass their protocol); a third party's class
arrives through an entry point at run time, so the registry checks it here: every member of the
protocol present, classmethods still classmethods, coroutines still coroutines, the same number of
parameters, the required ones implemented (not the protocol's own stub). Optional capabilities
(`start`, `provides`, `stats`, `delivery`, `credentials`, `json_schema`) have defaults a subclass
inherits. A sink type is checked when the registry loads it, the sink it makes when the pipeline
makes it (`Exporter`, or `NetworkSink` when the sink says it is `durable`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar

from qos_agent.plugins.sinks import Exporter, NetworkSink, SinkType
from qos_agent.plugins.steps import Probe, StepKind

REQUIRED: dict[type, frozenset[str]] = {
    StepKind: frozenset({"kind", "from_config"}),
    Probe: frozenset({"run", "close"}),
    SinkType: frozenset({"type", "from_config", "create"}),
    Exporter: frozenset({"type", "write", "close"}),
    NetworkSink: frozenset({"type", "sink_name", "encode", "send"}),
}
_NAME_KEYS: dict[type, str] = {StepKind: "kind", SinkType: "type", Exporter: "type", NetworkSink: "type"}


def _members(protocol: type) -> dict[str, object]:
    """The protocol's own methods and class variables (its bases' too), by name."""
    out: dict[str, object] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object,) or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_"):
                out[name] = value
        for name in vars(klass).get("__annotations__", {}):
            out.setdefault(name, ClassVar)
    return out


def _function(value: object) -> Callable[..., object] | None:
    if isinstance(value, classmethod | staticmethod):
        value = value.__func__
    return value if inspect.isfunction(value) else None


def _arity(fn: Callable[..., object]) -> int:
    """Parameters without a default, plus those the protocol passes positionally."""
    return sum(1 for p in inspect.signature(fn).parameters.values()
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def problems_of(cls: type, protocol: type) -> list[str]:
    """What keeps cls from being a `protocol` (empty: it conforms). NetworkSinks meet NetworkSink."""
    if protocol is Exporter and inspect.getattr_static(cls, "durable", False) is True:
        protocol = NetworkSink
    problems: list[str] = []
    required = REQUIRED.get(protocol, frozenset())
    for name, want in sorted(_members(protocol).items()):
        try:
            have = inspect.getattr_static(cls, name)
        except AttributeError:
            problems.append(f"'{name}' is missing")
            continue
        if want is ClassVar:
            continue
        want_fn, have_fn = _function(want), _function(have)
        if want_fn is None:
            continue
        if have_fn is None:
            problems.append(f"'{name}' is not a method")
            continue
        if name in required and have is want:
            problems.append(f"'{name}' is not implemented (only the protocol's stub)")
        if isinstance(want, classmethod) and not isinstance(have, classmethod):
            problems.append(f"'{name}' must be a classmethod")
        if inspect.iscoroutinefunction(want_fn) != inspect.iscoroutinefunction(have_fn):
            problems.append(f"'{name}' must {'' if inspect.iscoroutinefunction(want_fn) else 'not '}be async")
        if _arity(have_fn) > _arity(want_fn):
            problems.append(f"'{name}' takes more arguments than the protocol passes")
    if protocol is StepKind and not inspect.getattr_static(cls, "runtime", "") \
            and inspect.getattr_static(cls, "probe", None) is vars(StepKind)["probe"]:
        problems.append("neither 'runtime' (module:Class of its probe) nor 'probe' is given")
    key = _NAME_KEYS.get(protocol)
    if key is not None and not isinstance(inspect.getattr_static(cls, key, None), str):
        problems.append(f"'{key}' must be a string naming the plug-in")
    return problems

