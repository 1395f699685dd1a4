"""Soak: RSS and store size of a real `qos-agent run` with 50 journeys every second, for minutes.

The agent (its own process) runs `--journeys` one-step HTTP journeys every `--interval` against the
demo's /fast with a short disruption `--window` (the evaluator keeps each journey's runs of one
window) and a short SQLite `--retention` pruned every `--prune` (QOS_SQLITE_PRUNE_S), so both
fill within the run. Every `--every` seconds: VmRSS, the store's file size (db + WAL) and its live
pages. Printed: the samples, and the RSS slope over the part after the window has filled (MB/h):
flat means memory plateaus. Also the stored bytes per journey run, and from it MB/day per
journey-per-minute.
Run: `.venv/bin/python -m bench.bench_soak [--minutes 10] [--journeys 50] [--window 1m]`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_memory import agent_command
from bench.common import Demo, Others, header, http_journeys_yaml, rss_kb, table


def store_figures(db: Path) -> tuple[float, float, int]:
    """(file MB incl. WAL, live MB, journey runs stored)."""
    wal = db.with_name(db.name + "-wal")
    size = (db.stat().st_size if db.exists() else 0) + (wal.stat().st_size if wal.exists() else 0)
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            page = conn.execute("PRAGMA page_size").fetchone()[0]
            live = (conn.execute("PRAGMA page_count").fetchone()[0]
                    - conn.execute("PRAGMA freelist_count").fetchone()[0]) * page
            runs = conn.execute("SELECT count(*) FROM points WHERE measurement = 'journey'").fetchone()[0]
        conn.close()
    except sqlite3.Error:
        return size / 1e6, 0.0, 0
    return size / 1e6, live / 1e6, int(runs)


def slope_mb_per_h(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    den = sum((t - mx) ** 2 for t, _ in samples)
    return sum((t - mx) * (v - my) for t, v in samples) / den * 3600 if den else 0.0


def main(minutes: float, journeys: int, interval: str, window: str, retention: str, prune_s: float,
         every_s: float) -> None:
    seconds = minutes * 60
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, Demo() as demo:
        assert demo.proc is not None
        directory = Path(tmp)
        text = http_journeys_yaml(f"{demo.url}/fast", journeys, interval=interval, concurrency=100,
                                  exporters=f"  - type: sqlite\n    retention: {retention}")
        text = text.replace("defaults: {", f"defaults: {{disruption: {{window: {window}}}, ")
        (directory / "journeys.yaml").write_text(text)
        env = {**os.environ, "QOS_SQLITE_PRUNE_S": f"{prune_s:g}"}
        log = directory / "agent.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*agent_command(), "run", "journeys.yaml", "--duration", f"{seconds:g}s"],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=directory, env=env)
        others = Others([demo.proc.pid, proc.pid])
        db = directory / "state" / "qos-results.db"
        rows: list[list[str]] = []
        rss: list[tuple[float, float]] = []
        t0 = time.monotonic()
        next_at = every_s
        max_file = 0.0
        while proc.poll() is None:
            time.sleep(0.5)
            t = time.monotonic() - t0
            if t < next_at:
                continue
            next_at += every_s
            kb = rss_kb(proc.pid)
            if not kb:
                break
            file_mb, live_mb, runs = store_figures(db)
            max_file = max(max_file, file_mb)
            rss.append((t, kb / 1024))
            rows.append([f"{t:.0f}", f"{kb / 1024:.1f}", f"{file_mb:.2f}", f"{live_mb:.2f}", f"{runs:,}"])
        code = proc.wait(60)
        if code != 0:
            print(f"agent exited {code}:\n{log.read_text()[-2000:]}")
            raise SystemExit(1)
        note = others.note()
        file_mb, live_mb, runs = store_figures(db)
    window_s = float(window[:-1]) * {"s": 1, "m": 60, "h": 3600}[window[-1]]
    filled = [(t, v) for t, v in rss if t >= window_s + 60]  # a minute of slack after the window filled
    print(f"`qos-agent run --duration {seconds:g}s`: {journeys} one-step HTTP journeys every {interval}, "
          f"disruption window {window}, sqlite retention {retention} pruned every {prune_s:g} s\n")
    print(table(["t (s)", "RSS (MB)", "store file (MB)", "live data (MB)", "journey runs stored"], rows))
    per_run = live_mb * 1e6 / runs if runs else 0.0
    print(f"\nRSS slope after the window filled (t >= {window_s + 60:.0f} s, {len(filled)} samples): "
          f"{slope_mb_per_h(filled):+.1f} MB/h; RSS {min(v for _, v in filled):.1f}..{max(v for _, v in filled):.1f} MB"
          if filled else "\nthe run ended before the window filled: no slope")
    print(f"store: largest {max_file:.2f} MB, at the end {file_mb:.2f} MB holding {runs:,} journey runs "
          f"({per_run:.0f} bytes per run, journey and step points and indexes)")
    print(f"=> {per_run * 1440 / 1e6:.2f} MB/day per journey-per-minute "
          f"({per_run * 1440 * 30 / 1e9:.2f} GB per journey-per-minute over the default 30-day retention)")
    print(note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--journeys", type=int, default=50)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--window", default="1m", help="defaults.disruption.window (s/m/h)")
    parser.add_argument("--retention", default="3m", help="the sqlite exporter's retention")
    parser.add_argument("--prune", type=float, default=60.0, help="seconds between prunes (QOS_SQLITE_PRUNE_S)")
    parser.add_argument("--every", type=float, default=20.0, help="seconds between samples")
    args = parser.parse_args()
    header("Soak", "bench.bench_soak", sys.argv[1:])
    main(args.minutes, args.journeys, args.interval, args.window, args.retention, args.prune, args.every)
