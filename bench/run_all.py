"""`make bench`: every benchmark in sequence, each in its own process (so pinning and servers never leak).

Run: `.venv/bin/python -m bench.run_all [--only NAME ...] [--list]`. A bench that fails is reported
and the rest still run; the exit code is 1 if any failed. Each bench prints its own table, command,
date and how busy the rest of the machine was.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import ROOT

# (module, extra args). Other areas add their benches here.
BENCHES: list[tuple[str, list[str]]] = [
    ("bench.bench_accuracy", []),
    ("bench.bench_throughput", []),
    ("bench.bench_scheduler", []),
    ("bench.bench_overload", []),
    ("bench.bench_memory", []),
    ("bench.bench_check", []),
    ("bench.bench_detection", []),
    ("bench.bench_export", []),
    ("bench.bench_spool", []),
    ("bench.bench_browser", []),
    ("bench.bench_alerting", []),
    ("bench.bench_probes", []),
    ("bench.bench_prometheus", ["5000"]),
]
# Benches whose figures depend on the event loop: run once per loop (QOS_BENCH_LOOP), every prober of
# one run on the same loop.
PER_LOOP = {"bench.bench_accuracy", "bench.bench_throughput", "bench.bench_scheduler", "bench.bench_overload",
            "bench.bench_memory", "bench.bench_check", "bench.bench_browser"}
LIMIT_S = 300  # per bench; each is meant to take under ~2 minutes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only benches whose module name contains NAME (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the benches and exit")
    parser.add_argument("--loop", action="append", choices=("asyncio", "uvloop"), default=[],
                        help="run loop-dependent benches on this loop only (repeatable; default both)")
    args = parser.parse_args()
    chosen = [(m, a) for m, a in BENCHES if not args.only or any(o in m for o in args.only)]
    if args.list:
        print("\n".join(m for m, _ in chosen))
        return 0
    failed: list[str] = []
    loops = args.loop or ["asyncio", "uvloop"]
    for module, extra in chosen:
        for loop in loops if module in PER_LOOP else ["asyncio"]:
            t0 = time.monotonic()
            env = {**os.environ, "QOS_BENCH_LOOP": loop}
            try:
                code = subprocess.run([sys.executable, "-m", module, *extra], cwd=ROOT, timeout=LIMIT_S,
                                      env=env).returncode
            except subprocess.TimeoutExpired:
                code = -1
                print(f"{module}: stopped after {LIMIT_S} s")
            print(f"\n[{module} on {loop}: exit {code}, {time.monotonic() - t0:.0f} s]\n", flush=True)
            if code != 0:
                failed.append(f"{module} ({loop})")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
