"""Vetting a script step's module at load: imported in a child process with a time and memory bound.

Importing a user's module runs its code. `validate`, `check`, the agent's start and every reload
do it here, in `python -m probes.script.vet FILE` (the source on stdin, a JSON report on stdout),
under RLIMIT_AS, RLIMIT_CPU and a wall-clock limit, as reloads vet journeys.yaml
(qos_agent/ops/reload.py). So a module that hangs, bloats, exits or prints at import costs a
child, never the agent. The report names the module's callables (async or not, taking one `ctx`)
or why the import failed, with the script's line. Only the standard library is imported here:
the child starts in a few tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType

VET_TIMEOUT_S = 10.0  # wall clock for the child, its interpreter's start-up included
VET_CPU_S = 5  # RLIMIT_CPU of the child
VET_MEMORY_MB = 1024  # RLIMIT_AS of the child: the interpreter, the module and what it imports
MAX_SOURCE = 1 << 20  # a script larger than 1 MiB is refused at load (it is held in memory, per step)
MAX_CALLABLES = 200
MESSAGE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Vetted:
    """What the child found: why the module cannot be imported (`error`, with `line` in the script),
    or its callables as name -> (kind: async | sync, takes exactly one argument)."""

    error: str = ""
    line: int = 0
    functions: dict[str, tuple[str, bool]] = field(default_factory=dict)


def module_name(file: str, digest: str) -> str:
    """The name a script's module is registered under (sys.modules): one per file and content."""
    return "qos_script_" + hashlib.sha256(f"{file}\0{digest}".encode()).hexdigest()[:16]


def execute(file: str, source: bytes, name: str) -> ModuleType:
    """Run the script's source as module `name` (the child and the agent do the same): its folder
    is put on sys.path first, so it imports its neighbours (page objects, helpers)."""
    folder = str(Path(file).parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = ModuleType(name)
    module.__file__ = file
    sys.modules[name] = module
    try:
        exec(compile(source, file, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def script_line(tb: TracebackType | None, file: str) -> int:
    """The line of the deepest frame of a traceback that is in `file` (0: none is)."""
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe_import_error(exc: BaseException, file: str) -> tuple[str, int]:
    """(one line saying what went wrong, the script's line) for an exception raised at import."""
    if isinstance(exc, SyntaxError) and exc.filename == file:
        return f"SyntaxError: {exc.msg}", exc.lineno or 0
    text = " ".join(str(exc).split())
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return what[:MESSAGE_LIMIT], script_line(exc.__traceback__, file)


def _callables(module: ModuleType) -> dict[str, tuple[str, bool]]:
    import inspect

    out: dict[str, tuple[str, bool]] = {}
    for name, value in vars(module).items():
        if name.startswith("__") or not callable(value) or len(out) >= MAX_CALLABLES:
            continue
        kind = "async" if inspect.iscoroutinefunction(value) else "sync"
        try:
            inspect.signature(value).bind(None)
            one = True
        except (TypeError, ValueError):
            one = False
        out[name] = (kind, one)
    return out


def _limit_self() -> None:
    """Cap address space and CPU, never above what the parent was given (a limited `validate`)."""
    import resource

    def cap(which: int, soft: int, hard: int) -> None:
        _, given = resource.getrlimit(which)
        if given != resource.RLIM_INFINITY:
            soft, hard = min(soft, given), min(hard, given)
        resource.setrlimit(which, (soft, hard))

    mem = VET_MEMORY_MB * 2**20
    cap(resource.RLIMIT_AS, mem, mem)
    cap(resource.RLIMIT_CPU, VET_CPU_S, VET_CPU_S + 1)


def _child_main(argv: list[str]) -> None:
    """`python -m probes.script.vet FILE`: the source on stdin, one JSON report on stdout."""
    report = os.fdopen(os.dup(1), "w")  # (not inheritable: a process the module starts never holds it)
    quiet = os.open(os.devnull, os.O_RDWR)
    source = sys.stdin.buffer.read(MAX_SOURCE + 1)
    for fd in (0, 1, 2):  # whatever the module prints or reads at import goes nowhere
        os.dup2(quiet, fd)
    try:
        _limit_self()
        file = argv[0]
        module = execute(file, source, "qos_script_vetted")
        doc: dict[str, object] = {"functions": _callables(module)}
    except MemoryError:
        doc = {"error": f"importing it needs more than {VET_MEMORY_MB} MB", "line": 0}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the report is still written
        what, line = describe_import_error(exc, argv[0] if argv else "")
        doc = {"error": what, "line": line}
    report.write(json.dumps(doc))
    report.flush()
    os._exit(0)  # no atexit handler or thread the module left may hold the child


_cache: dict[tuple[str, str], Vetted] = {}
_cache_lock = threading.Lock()


def vet_script(file: Path, source: bytes, digest: str) -> Vetted:
    """The child's report on `source` as `file` (cached per file and content for this process)."""
    key = (str(file), digest)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    vetted = _run_child(str(file), source)
    with _cache_lock:
        _cache[key] = vetted
    return vetted


def _run_child(file: str, source: bytes) -> Vetted:
    here = str(Path(__file__).resolve().parents[2])  # the folder holding `probes`, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "probes.script.vet", file], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(source, timeout=VET_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return Vetted(error=f"importing it took more than {VET_TIMEOUT_S:g}s", line=0)
    finally:
        if proc.returncode is None:
            _kill_group(proc)
    try:
        doc = json.loads(out)
        if "error" in doc:
            return Vetted(error=str(doc["error"])[:MESSAGE_LIMIT], line=int(doc.get("line") or 0))
        return Vetted(functions={str(k): (str(v[0]), bool(v[1])) for k, v in dict(doc["functions"]).items()})
    except (ValueError, KeyError, TypeError, IndexError):
        code = proc.returncode or 0
        how = f"was killed by signal {-code}" if code < 0 else f"ended with status {code}"
        return Vetted(error=f"the process importing it {how} (over {VET_MEMORY_MB} MB or {VET_CPU_S}s of CPU, "
                            "or os._exit at import?)")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """The child and whatever it started (its own session): killed, the pipes closed, reaped."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.communicate(timeout=2.0)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        proc.wait()


if __name__ == "__main__":
    _child_main(sys.argv[1:])
