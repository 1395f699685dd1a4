"""The `buildah bud` options that give pip inside the build this machine's package index settings.

    python3 scripts/pip_build_volumes.py OUTDIR     # writes OUTDIR/pip.conf, prints one option a line

pip on the host reads its config files (/etc/pip.conf, /etc/xdg/pip/pip.conf, ~/.config/pip/pip.conf, ...)
and PIP_* variables. They are merged here as pip merges them (the files as `pip config list` shows them,
the environment on top) into one pip.conf for the build stage's PIP_CONFIG_FILE (a build ARG, so never
in the final image). Every local path they name (a CA bundle, a constraints file, a find-links directory,
a file:// index) is mounted read-only under /run/qos-build-pip, and the file points there: the image's
own /etc (its CA bundle, which apt may rewrite) is left alone. A `--volume` exists only while a RUN step
runs: none of it is written into the image.
"""

from __future__ import annotations

import ast
import configparser
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

# Options whose values may name files or directories on this machine (space-separated lists allowed).
MOUNT_ROOT = "/run/qos-build-pip"
PATH_OPTIONS = {"cert", "client-cert", "constraint", "requirement", "find-links", "index-url", "extra-index-url"}


def file_settings() -> dict[str, dict[str, str]]:
    """{section: {option: value}} from pip's config files, merged in pip's order (later files win)."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}  # no pip here: only the environment counts
    settings: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        section, dot, option = name.partition(".")
        if not sep or not dot or section == ":env:":  # the environment is read below, with pip's own rule
            continue
        settings.setdefault(section, {})[option] = ast.literal_eval(value)
    return settings


def env_settings(environ: dict[str, str]) -> dict[str, str]:
    """PIP_FIND_LINKS=... -> find-links: pip's rule for its variables."""
    skip = {"config-file", "version", "help"}
    options = {key[4:].lower().replace("_", "-"): value for key, value in environ.items() if key.startswith("PIP_")}
    return {k: v for k, v in options.items() if k not in skip}


def merged(files: dict[str, dict[str, str]], env: dict[str, str]) -> dict[str, dict[str, str]]:
    """pip lets the environment override every section; so the env goes into [global] and out of the others."""
    out = {section: {k: v for k, v in options.items() if k not in env} for section, options in files.items()}
    out.setdefault("global", {}).update(env)
    return {section: options for section, options in out.items() if options}


def path_of(token: str) -> Path | None:
    """The existing local path a value names (a file:// URL or an absolute path), resolved; else None."""
    if token.startswith("file:"):
        path = Path(unquote(urlparse(token).path))
    elif token.startswith("/"):
        path = Path(token)
    else:
        return None  # a URL on the network, or relative to a requirements file
    return path.resolve() if path.exists() else None


def mounted(settings: dict[str, dict[str, str]]) -> tuple[dict[str, dict[str, str]], list[Path]]:
    """The settings with local paths moved under MOUNT_ROOT, and the host paths to mount there."""
    paths: set[Path] = set()
    out: dict[str, dict[str, str]] = {}
    for section, options in settings.items():
        out[section] = {}
        for option, value in options.items():
            tokens = value.split() if option in PATH_OPTIONS else []
            for i, token in enumerate(tokens):
                path = path_of(token)
                if path is None:
                    continue
                # A file:// index's files sit next to its simple/ directory: mount both.
                paths.add(path.parent if token.startswith("file:") and path.name == "simple" else path)
                inside = f"{MOUNT_ROOT}{path}"
                tokens[i] = f"file://{inside}" if token.startswith("file:") else inside
            out[section][option] = " ".join(tokens) if tokens else value
    # A path inside another mounted one needs no mount of its own.
    roots = sorted(p for p in paths if not any(q in p.parents for q in paths))
    return out, roots


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(sys.argv[1])
    settings, paths = mounted(merged(file_settings(), env_settings(dict(os.environ))))
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(settings)
    with (out_dir / "pip.conf").open("w") as f:
        parser.write(f)
    print(f"--volume={out_dir / 'pip.conf'}:{MOUNT_ROOT}/pip.conf:ro")
    print(f"--build-arg=PIP_CONFIG_FILE={MOUNT_ROOT}/pip.conf")
    for path in paths:
        print(f"--volume={path}:{MOUNT_ROOT}{path}:ro")
    return 0


if __name__ == "__main__":
    sys.exit(main())
