"""The built image, run with Debian's buildah: no daemon, vfs storage, chroot isolation (`make image`).

    with Container(IMAGE) as box:                      # `buildah from`; removed on exit
        box.run(["--version"])                         # ENTRYPOINT + args, as a runtime starts them
        proc = box.start(["run", "/etc/qos-agent/journeys.yaml"], log=path, volumes=[...])

chroot isolation shares the host's network (the agent reaches the demo service on 127.0.0.1, the test
reaches the agent's endpoint) and the host's PID namespace. So `start`/`run` give the ENTRYPOINT its
own PID namespace the way a runtime does: `buildah run` starts, as root and with CAP_SYS_ADMIN, only
`unshare --pid --fork --mount-proc`; `setpriv` then becomes the image's USER with no capabilities and no
new privileges (the Kubernetes example's securityContext) and execs the ENTRYPOINT, which is PID 1.
`buildah run` applies the rest of the image's config itself: its environment and working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

IMAGE = os.environ.get("QOS_IMAGE", "localhost/qos-agent:latest")
STORAGE_DRIVER = os.environ.get("STORAGE_DRIVER", "vfs")  # as scripts/image-build.sh
BUILDAH = shutil.which("buildah")
_ENV = {**os.environ, "BUILDAH_ISOLATION": "chroot"}


def buildah(*args: str, timeout: float = 300) -> str:
    """`buildah --storage-driver ... ARGS`: its stdout; an error names the command and its stderr."""
    assert BUILDAH is not None
    # Debian's buildah 1.28 does not read STORAGE_DRIVER itself: it is passed as a flag.
    argv = [BUILDAH, "--storage-driver", STORAGE_DRIVER, *args]
    r = subprocess.run(argv, capture_output=True, text=True, env=_ENV, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} ... exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def image_present(image: str = IMAGE) -> bool:
    if BUILDAH is None:
        return False
    try:
        buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", image, timeout=60)
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


def image_config(image: str = IMAGE) -> dict[str, Any]:
    """The image's Docker config (User, Env, Entrypoint, Cmd, Healthcheck, ExposedPorts, Volumes...)."""
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))["Docker"]["config"]
    return config


def env_of(config: Mapping[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config.get("Env") or [])


@dataclass(frozen=True)
class Entry:
    """One path of a file tree as a snapshot sees it."""

    kind: int
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int


def snapshot(root: Path, skip: Iterable[str] = ()) -> dict[str, Entry]:
    """Every path under `root` (relative, '/'-rooted) but those under `skip`: enough to see any write."""
    skipped = {s.strip("/") for s in skip}
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = [d for d in dirnames if os.path.join(rel_dir, d) not in skipped]
        for name in [*dirnames, *filenames, ""]:
            rel = os.path.join(rel_dir, name) if name else rel_dir
            st = os.lstat(os.path.join(root, rel))
            out["/" + rel] = Entry(stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                   st.st_size, st.st_mtime_ns)
    return out


def changes(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> list[str]:
    """'+ path', '- path', '~ path' for what was added, removed or modified."""
    return sorted([f"+ {p}" for p in after.keys() - before.keys()] + [f"- {p}" for p in before.keys() - after.keys()]
                  + [f"~ {p}" for p in before.keys() & after.keys() if before[p] != after[p]])


class Container:
    """A working container of the image (`buildah from`); its root filesystem is `rootfs` on the host."""

    def __init__(self, image: str = IMAGE) -> None:
        self.image = image
        self.config = image_config(image)
        self.name = ""
        self.rootfs = Path()

    def __enter__(self) -> Container:
        self.name = buildah("from", "--pull=false", self.image, timeout=600).strip()
        self.rootfs = Path(buildah("mount", self.name).strip())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        buildah("rm", self.name)

    def user(self) -> tuple[int, int, str]:
        """(uid, gid, home) of the image's USER, from its /etc/passwd when it names a known user."""
        user, _, group = str(self.config.get("User") or "0").partition(":")
        for line in (self.rootfs / "etc/passwd").read_text().splitlines():
            name, _, uid, gid, _, home, _ = line.split(":")
            if user in (name, uid):
                return int(uid), int(group or gid), home
        return int(user), int(group or user), "/"

    def command(self, args: list[str], *, entrypoint: bool = True, env: Mapping[str, str] | None = None,
                volumes: Iterable[str] = ()) -> list[str]:
        """The `buildah run` command line for ENTRYPOINT + args (or args alone), in its own PID namespace."""
        assert BUILDAH is not None
        uid, gid, home = self.user()
        first = list(self.config.get("Entrypoint") or []) if entrypoint else []
        options = ["--user", "0:0", "--cap-add", "CAP_SYS_ADMIN", "--env", f"HOME={home}"]
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        for volume in volumes:
            options += ["--volume", volume]
        return [BUILDAH, "--storage-driver", STORAGE_DRIVER, "run", *options, self.name, "--",
                "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--no-new-privs", "--", *first, *args]

    def run(self, args: list[str], *, timeout: float = 120, entrypoint: bool = True,
            env: Mapping[str, str] | None = None, volumes: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(args, entrypoint=entrypoint, env=env, volumes=volumes), env=_ENV,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, args: list[str], *, log: IO[bytes], env: Mapping[str, str] | None = None,
              volumes: Iterable[str] = ()) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(args, env=env, volumes=volumes), env=_ENV, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def volume_dirs(self) -> dict[str, Path]:
        """{VOLUME path: the host directory mounted there}. buildah gives each VOLUME of the image a directory
        of this container's own, made from the image's content, as Docker makes an anonymous volume; the
        same container keeps it from run to run. (A `--volume` at that path would race with it in
        buildah 1.28: which of the two ends on top varies.)"""
        out = {}
        for line in self.plain_run(["cat", "/proc/self/mountinfo"]).splitlines():
            root, mount_point = line.split()[3:5]
            if mount_point in (self.config.get("Volumes") or {}):
                out[mount_point] = Path(root)
        assert set(out) == set(self.config.get("Volumes") or {}) and all(p.is_dir() for p in out.values()), out
        return out

    def plain_run(self, args: list[str], timeout: float = 60) -> str:
        """`buildah run` as the image configures it (its USER, no PID namespace of our own): stdout."""
        return buildah("run", self.name, "--", *args, timeout=timeout)


@dataclass(frozen=True)
class Process:
    """A process as the host's /proc shows it, with its PID inside its own namespace."""

    pid: int
    ppid: int
    ns_pid: int
    uid: int
    argv: list[str]


def process(pid: int) -> Process:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode(errors="replace").split("\0")
    return Process(pid, int(status["PPid"]), int(status["NSpid"].split()[-1]), int(status["Uid"].split()[0]), argv)


def descendants(pid: int) -> list[Process]:
    """Every live process below `pid` (host view), parents before children."""
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                procs.append(process(int(entry.name)))
            except (OSError, KeyError, ValueError):
                continue  # it exited meanwhile
    out: list[Process] = []
    parents = {pid}
    while True:
        found = [p for p in procs if p.ppid in parents and p not in out]
        if not found:
            return out
        out += found
        parents = {p.pid for p in found}
