"""Reload that cannot hurt the running agent: vet the new file in a limited subprocess, then load it.

SIGHUP and `run --watch` call `Reloader.request()`, which never raises and never blocks the event
loop. The file's bytes are read once; a child process (`python -m qos_agent.ops.reload`) with its own
memory and CPU limits parses exactly those bytes and answers with its located problems. Only bytes
the child accepted are then parsed in the agent, in a thread. So an alias bomb, a file of 1,000,000
nesting levels or anything the loader has not thought of costs a child process, not the agent: runs
go on, /healthz answers, RSS stays put, SIGTERM is honoured. Requests arriving during a reload are
coalesced into one more reload afterwards.

The loader's own bounds (5 MB, 100,000 values after aliases, 64 levels) keep every real file far
below the child's limits, so no file reaches them today; they are the second line. So that their
branches are still run by tests, the environment variable QOS_RELOAD_TEST (tests only; unset, it
does nothing) makes the child misbehave after taking its limits: `stall` sleeps until the wall time
kills it, `hog` allocates until the address-space limit refuses (MemoryError), `spin` lowers its
CPU limit to 1 s and spins until the kernel kills it (SIGXCPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from qos_agent.config.loader import MAX_READ, load_config_bytes
from qos_agent.errors import ConfigError
from qos_agent.language.text import one_line
from qos_agent.model import Config

log = logging.getLogger(__name__)

VET_TIMEOUT_S = 20.0  # wall clock for the child (its start-up included; a valid file takes well under 1s)
VET_CPU_S = 10  # RLIMIT_CPU of the child
VET_MEMORY_MB = 1024  # RLIMIT_AS of the child: the interpreter and the plug-ins, plus room for a large file
MAX_PROBLEMS = 50  # located problems kept in the log, /healthz and the reload error
TEST_ENV = "QOS_RELOAD_TEST"  # tests only: stall | hog | spin (see the module docstring)


def _limit_self() -> None:
    """In the child: cap address space and CPU before reading anything."""
    import resource

    mem = VET_MEMORY_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (VET_CPU_S, VET_CPU_S + 1))


def _misbehave(how: str) -> None:
    """In the child, for tests (QOS_RELOAD_TEST): drive the limits' branches, which no real file reaches."""
    import resource

    if how == "stall":
        time.sleep(3600)
    elif how == "hog":
        held = []
        while True:  # untouched zeroed pages: address space, not resident memory
            held.append(bytearray(64 * 2**20))
    elif how == "spin":
        resource.setrlimit(resource.RLIMIT_CPU, (1, 2))
        while True:
            pass


def _child_main(argv: list[str]) -> int:
    """`python -m qos_agent.ops.reload FILE [REGION]`: the file's bytes on stdin, JSON problems on stdout."""
    try:
        _limit_self()
        _misbehave(os.environ.get(TEST_ENV, ""))
        data = sys.stdin.buffer.read(MAX_READ)
        path, region = argv[0], (argv[1] if len(argv) > 1 and argv[1] else None)
        try:
            load_config_bytes(data, path, region=region)
            problems: list[str] = []
        except ConfigError as e:
            problems = [str(p) for p in e.problems[:MAX_PROBLEMS]] or [f"{path}:1:1: the file is not valid"]
    except MemoryError:
        problems = [f"{argv[0] if argv else '?'}:1:1: reading the file needs more than {VET_MEMORY_MB} MB "
                    "(fix the file: fewer aliases, less nesting, smaller)"]
    except Exception as e:  # never a traceback: the agent logs one line
        problems = [f"{argv[0] if argv else '?'}:1:1: the file could not be read: {one_line(type(e).__name__)}"]
    sys.stdout.write(json.dumps({"problems": problems}))
    sys.stdout.flush()
    return 0


async def vet(data: bytes, path: str, region: str | None) -> list[str]:
    """Located problems of `data` as journeys.yaml, found by a limited child process ([] when valid)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qos_agent.ops.reload", path, region or "",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(data), VET_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return [f"{path}:1:1: reading the file took more than {VET_TIMEOUT_S:g}s "
                "(fix the file: fewer aliases, less nesting, smaller)"]
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    try:
        problems = json.loads(out)["problems"]
        return [one_line(p) for p in problems][:MAX_PROBLEMS]
    except (ValueError, KeyError, TypeError):
        return [f"{path}:1:1: checking the file {_death(proc.returncode)} "
                f"(over {VET_MEMORY_MB} MB or {VET_CPU_S}s of CPU? fix the file: fewer aliases, less nesting, smaller)"]


def _death(code: int | None) -> str:
    """How the child ended without an answer, in words."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return "ran out of CPU time (SIGXCPU)" if -code == signal.SIGXCPU else f"was killed by {name}"
    return f"ended with status {code}"


class Reloader:
    """Turns reload requests into at most one reload at a time; `apply` and `refuse` run on the loop."""

    def __init__(self, path: str, region: str | None, apply: Callable[[Config, str], None],
                 refuse: Callable[[str], None]) -> None:
        self.path = path
        self.region = region
        self.apply = apply
        self.refuse = refuse
        self.task: asyncio.Task[None] | None = None
        self.pending = False

    def request(self) -> None:
        """Safe from a signal handler or a watcher: schedules a reload (or one more, if one is running)."""
        if self.task is not None and not self.task.done():
            self.pending = True
            return
        self.task = asyncio.get_running_loop().create_task(self._loop(), name="reload")

    async def wait(self) -> None:
        """Until no reload is running (tests, shutdown)."""
        while self.task is not None and not self.task.done():
            await asyncio.shield(self.task)

    async def _loop(self) -> None:
        while True:
            self.pending = False
            try:
                await self.reload_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a reload must never take the agent down
                self.refuse(f"{self.path}:1:1: reload failed: {one_line(type(e).__name__)}: {one_line(e, 200)}")
            if not self.pending:
                return

    async def reload_once(self) -> None:
        try:
            data = await asyncio.to_thread(_read, self.path)
        except OSError as e:
            self.refuse(f"{self.path}:1:1: cannot read the file: {one_line(e.strerror or type(e).__name__)}")
            return
        problems = await vet(data, self.path, self.region)
        if problems:
            self.refuse("\n".join(problems))
            return
        try:
            config = await asyncio.to_thread(load_config_bytes, data, self.path, None, self.region)
        except ConfigError as e:  # the environment changed between the two reads
            self.refuse(str(e))
            return
        self.apply(config, hashlib.sha256(data).hexdigest())


def _read(path: str) -> bytes:
    with Path(path).open("rb") as f:
        return f.read(MAX_READ)


def log_refusal(path: str, reason: str) -> None:
    """One log line per located problem (bounded), never a traceback."""
    lines = reason.splitlines() or [reason]
    log.error("reload refused, keeping the running configuration (%s: %d problem%s):", path, len(lines),
              "" if len(lines) == 1 else "s")
    for line in lines[:MAX_PROBLEMS]:
        log.error("  %s", one_line(line))


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
