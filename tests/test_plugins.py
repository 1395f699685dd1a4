"""Every registered plug-in keeps its protocol; a plug-in missing a method is refused with the reason.
A step kind is its light class (`StepKind`) and the probe it makes (`Probe`): both are checked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from qos_agent.config.loader import load_config
from qos_agent.errors import ConfigError, SetupError
from qos_agent.language.nodes import Node, Problems
from qos_agent.model import Point, Step, StepResult
from qos_agent.plugins import registry
from qos_agent.plugins.conformance import problems_of
from qos_agent.plugins.context import LoadContext, RunContext
from qos_agent.plugins.sinks import Exporter, ExporterEnv, NetworkSink, SinkType
from qos_agent.plugins.steps import Probe, StepKind
from tests.support.sinks import EXAMPLES, parse_exporter


def test_every_registered_step_kind_and_its_probe_conform() -> None:
    kinds = registry.probe_kinds()
    assert {"http", "browser"} <= set(kinds)
    for kind in kinds:  # entry points included: probe_refs() reads them
        cls = registry.step_kind(kind)
        assert problems_of(cls, StepKind) == [], kind
        assert cls.kind == kind
        assert problems_of(type(registry.make_probe(kind)), Probe) == [], kind


def test_every_registered_sink_type_conforms() -> None:
    types = registry.exporter_types()
    assert {"sqlite", "jsonl", "junit", "influxdb"} <= set(types)
    for kind in types:
        cls = registry.exporter_class(kind)
        assert problems_of(cls, SinkType) == [], kind
        assert cls.type == kind
    assert registry.exporter_class("influxdb").durable and not registry.exporter_class("sqlite").durable


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
async def test_every_built_in_sink_a_type_makes_conforms(kind: str, tmp_path: Path) -> None:
    """The run-time side, made by the registry as the pipeline makes it (and checked there)."""
    cls = registry.exporter_class(kind)
    spec = parse_exporter(kind, EXAMPLES[kind], tmp_path)
    sink = registry.make_sink(kind, spec, ExporterEnv(tmp_path, "r", "a"))
    try:
        assert problems_of(type(sink), Exporter) == [] and sink.type == kind and sink.durable == cls.durable
    finally:
        await sink.close()


def test_every_built_in_sink_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(registry.BUILTIN_EXPORTERS)


def test_a_sink_type_whose_sink_breaks_its_protocol_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    refs = {**registry.exporter_refs(), "nosend": f"{__name__}:NoSendType"}
    monkeypatch.setattr(registry, "exporter_refs", lambda: refs)
    registry.exporter_class.cache_clear()
    try:
        with pytest.raises(SetupError, match=r"the sink nosend makes \(NoSend\) does not keep its protocol: "
                                             r"'send' is not implemented"):
            registry.make_sink("nosend", "spec", ExporterEnv(tmp_path, "r", "a"))
    finally:
        registry.exporter_class.cache_clear()


def test_the_entry_points_are_the_ones_installed() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="qos_agent.exporters")}
    assert "influxdb" in names  # pyproject's entry points are installed, and so loaded above


class NoRun(Probe):
    """A probe whose author forgot `run`."""

    async def close(self) -> None:
        return None


class NoRunKind(StepKind[str]):
    """A kind whose probe has no `run`."""

    kind: ClassVar[str] = "norun"

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> str | None:
        return "spec"

    @classmethod
    def probe(cls) -> Probe:
        return NoRun()  # type: ignore[abstract]


class NoProbeKind(StepKind[str]):
    """A kind whose author forgot `probe`."""

    kind: ClassVar[str] = "noprobe"

    @classmethod
    def from_config(cls, step: Node, problems: Problems, load: LoadContext) -> str | None:
        return "spec"


class SyncKind:
    """Not a subclass, and `from_config` not a classmethod."""

    kind = "synckind"

    def from_config(self, step: Node, problems: Problems, load: LoadContext) -> str:
        return "spec"

    @classmethod
    def probe(cls) -> Probe:
        raise NotImplementedError


class SyncRun:
    """Not a subclass, and `run` is not a coroutine."""

    def run(self, step: Step, ctx: RunContext) -> StepResult:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class NoSend(NetworkSink):
    """A network sink without `send`."""

    type: ClassVar[str] = "nosend"

    def sink_name(self) -> str:
        return "nosend"

    def encode(self, points: Sequence[Point]) -> list[str]:
        return []


def test_a_probe_missing_run_fails_conformance() -> None:
    assert problems_of(NoRun, Probe) == ["'run' is not implemented (only the protocol's stub)"]
    assert problems_of(NoProbeKind, StepKind) == ["neither 'runtime' (module:Class of its probe) nor 'probe' is given"]


def test_a_structural_plugin_is_checked_member_by_member() -> None:
    problems = problems_of(SyncKind, StepKind)
    assert "'from_config' must be a classmethod" in problems
    assert "'provides' is missing" in problems and "'sends' is missing" in problems
    assert "'runtime' is missing" in problems
    assert "'run' must be async" in problems_of(SyncRun, Probe)
    assert "'start' is missing" in problems_of(SyncRun, Probe)


class NoSendType(SinkType[str]):
    """A well-formed type whose sink lacks `send`."""

    type: ClassVar[str] = "nosend"
    durable: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Node, problems: Problems, load: LoadContext) -> str | None:
        return "spec"

    @classmethod
    def create(cls, spec: str, env: ExporterEnv) -> Exporter:
        return NoSend()  # type: ignore[abstract]


def test_a_network_sink_missing_send_fails_conformance() -> None:
    assert problems_of(NoSend, Exporter) == ["'send' is not implemented (only the protocol's stub)"]


def test_the_registry_refuses_a_broken_plugin_with_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    refs: dict[str, str] = {**registry.probe_refs(), "noprobe": f"{__name__}:NoProbeKind",
                            "norun": f"{__name__}:NoRunKind"}
    monkeypatch.setattr(registry, "probe_refs", lambda: refs)
    registry.step_kind.cache_clear()
    try:
        with pytest.raises(SetupError, match=r"tests.test_plugins:NoProbeKind does not implement StepKind: neither "):
            registry.step_kind("noprobe")
        with pytest.raises(SetupError, match=r"the probe of plug-in tests.test_plugins:NoRunKind does not implement "
                                             r"Probe: 'run' is not "):
            registry.make_probe("norun")
        path = tmp_path / "journeys.yaml"  # in a journeys file: a located problem, not a traceback
        path.write_text("version: 1\njourneys:\n  - name: j\n    steps:\n      - name: s\n        noprobe: {}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
        (problem,) = [str(p) for p in info.value.problems]
        assert problem.startswith(f"{path}:6:9: plug-in tests.test_plugins:NoProbeKind does not implement StepKind")
        assert problem.endswith("(subclass qos_agent.plugins.steps.StepKind and implement them)")
    finally:
        registry.step_kind.cache_clear()


def test_built_in_names_resolve_without_entry_points_and_a_plugin_cannot_take_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    refs: dict[str, str] = {"http": f"{__name__}:NoRunKind", "norun": f"{__name__}:NoRunKind"}
    monkeypatch.setattr(registry, "probe_refs", lambda: calls.append("scan") or refs)
    registry.step_kind.cache_clear()
    try:
        assert registry.is_probe_kind("http") and registry.step_kind("http").__name__ == "HttpKind"
        assert calls == []  # a built-in name never reads the entry points (~30 ms of importlib.metadata)
        assert registry.is_probe_kind("norun") and not registry.is_probe_kind("nosuch")
        assert calls == ["scan", "scan"]
    finally:
        registry.step_kind.cache_clear()


class Minimal(Probe):
    async def run(self, step: Step, ctx: RunContext) -> StepResult:
        raise AssertionError("not run here")

    async def close(self) -> None:
        return None


async def test_the_protocol_defaults_are_inherited() -> None:
    assert problems_of(Minimal, Probe) == [] and problems_of(NoRunKind, StepKind) == []
    assert NoRunKind.provides("spec") == set() and NoRunKind.step_keys == frozenset()
    assert NoRunKind.yields.sources == () and not NoRunKind.heavy and NoRunKind.sends("spec").headers == ()
    await Minimal().start()  # the default: nothing to check
    assert NoSend().delivery().batch_size == 5000 and NoSend().stats().delivered == 0  # type: ignore[abstract]


def test_mypy_refuses_to_instantiate_a_plugin_missing_a_method() -> None:
    """The same check, statically: `NoRun()` is an error for mypy (abstract attribute "run")."""
    import subprocess
    import sys
    from pathlib import Path

    snippet = "from tests.test_plugins import NoRun, NoSend\nNoRun()\nNoSend()\n"
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file=", "--ignore-missing-imports", "-c", snippet], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert 'Cannot instantiate abstract class "NoRun" with abstract attribute "run"' in out.stdout, out.stdout
    assert 'Cannot instantiate abstract class "NoSend" with abstract attribute "send"' in out.stdout, out.stdout


def test_a_plugin_whose_module_fails_to_import_is_a_located_problem(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """Issue 23: a third-party plug-in whose module raised on import made `validate` print a traceback."""
    (tmp_path / "broken_plugin.py").write_text("import no_such_dependency_qos\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    refs: dict[str, str] = {**registry.probe_refs(), "broken": "broken_plugin:Kind"}
    monkeypatch.setattr(registry, "probe_refs", lambda: refs)
    registry.step_kind.cache_clear()
    try:
        path = tmp_path / "journeys.yaml"
        path.write_text("version: 1\njourneys:\n  - name: j\n    steps:\n      - name: s\n        broken: {}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
        (problem,) = [str(p) for p in info.value.problems]
        assert problem == (f"{path}:6:9: plug-in broken_plugin:Kind cannot be imported: ModuleNotFoundError: No "
                           "module named 'no_such_dependency_qos' (install the plug-in's dependencies, or fix or "
                           "uninstall the plug-in)")
    finally:
        registry.step_kind.cache_clear()


def test_the_built_in_sink_types_are_the_entry_points_pyproject_declares() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["qos_agent.exporters"] == registry.BUILTIN_EXPORTERS


def test_the_built_in_step_kinds_are_the_entry_points_pyproject_declares() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["qos_agent.probes"] == registry.BUILTIN_PROBES
