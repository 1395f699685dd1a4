"""The agent's life in a real process (issue 23): tests/test_lifecycle_process.py and `make soak`.

A real `qos-agent run` (no `--watch`: a reload is SIGHUP), the demo service (its fault knobs break and
heal each journey's target), a real Alertmanager, a webhook receiver (`format: json` and
`pagerduty`) and an InfluxDB-protocol receiver that goes down (answering 503, or not listening at
all) for longer than the sink's tiny spool (`max_spool_mb` 0.02: the oldest records are dropped), driven through `events(seed, n,
outages=True)` (tests/support/lifecycle.py): reloads that add, remove, rename and move journeys
(region, shard) or only change comments and key order, SIGTERM and `kill -9` restarts (the file
sometimes edited while the agent is down), faults on and off, outages on and off.

After every event, at a quiet moment, `Driver.settled` checks:
- the disruption promises (`Observed`): every close after its open, once; the reason right; nothing
  open for a journey that is not this agent's; OPEN_AFTER failed runs mean one open, CLOSE_AFTER good
  ones none; a restart keeps and announces the open ones, and its first good run closes them;
- Alertmanager's active alerts (`/api/v2/alerts`) are exactly the open disruptions, within one
  `resend`: none whose disruption closed or whose journey is gone;
- each webhook (json, pagerduty) was told every open disruption firing, and every firing it was
  told resolved with the same key once its disruption closed; nothing else;
- nothing was delivered twice by one process (by record id: the webhook's key and status, a line's
  series and time; the receivers know which process sent what, tests/support/recorders.py); a
  repeat by a later process only after a `kill -9` that came while it was under way (at least once:
  the kill came before the sink's spool was next seen empty in /healthz after the record was accepted);
- the counters conserve for the network sink: made + what the spool held at start = delivered +
  spooled + queued + dropped + dead_lettered;
- `/livez` answered 200 at every poll (every 0.25 s) since the process was ready — through outages,
  a full spool and reloads;
- a reload kept the timing of every journey whose meaning it did not change: its next planned run
  (`/healthz` `next_run`) is the same, or later by the ticks that came meanwhile (each tick is an
  interval minus at most 5 % jitter);
- no traceback in the agent's log;
- at the end, the sinks' credentials (the line sink's password, Alertmanager's bearer token) went
  out on the wire and are in no log, file under state_dir, /healthz or /metrics.

**Quiet** means one `/healthz` body in which every sink's `queued` is 0: no point is in memory or
being stored, so each is counted in exactly one place, and the jsonl sink (a local file) has written
every point made so far — its `delivered` says how many lines this process wrote, so the driver
reads exactly that prefix of the file: no run is half read (a run's journey point and the disruption
point it caused travel in one batch). The network sink's "made" is the jsonl sink's made (every sink
is offered the same points); what its spool held at start is counted in the spool file before the
process starts.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import math
import random
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from qos_agent.model import Point
from tests.support.alertmanager import AlertmanagerServer
from tests.support.demo import DemoProcess
from tests.support.health import AgentProcess, get
from tests.support.lifecycle import AGENT, CLOSE_AFTER, RELOADS, Event, Id, Life, Observed, events, render
from tests.support.recorders import HookRecorder, LineRecorder, LoopThread
from tests.support.waiting import wait_for

T = TypeVar("T")
INTERVAL_S = 1.0  # every journey's interval
RESEND_S = 10.0  # the alertmanager sink's resend (its minimum)
SPOOL_MB = 0.02  # the network sink's spool: a few seconds of points
PATH, EXPECT = "/api/tickets/{target}", "{status: 404}"  # the demo has no such ticket: 404 is healthy
SINK_OF = {"json": "webhook#3", "pagerduty": "webhook#4"}  # a receipt's kind -> its sink (else influxdb#1)
PHASE_TOLERANCE_MS = 5  # next_run is loop time turned into wall time at each read
FLAKY = 0.1  # share of the line receiver's requests refused while it is up: a part fails alone
# The sinks' credentials, from variables whose names do not look secret: only the sinks' own rule
# keeps them out of every log, file and answer (they go on the wire, added to each request).
CREDENTIALS = {"QOS_LIFE_WORD": "Pw0rdOfTheLineSink77", "QOS_LIFE_BEARER": "B3arerOfTheAlertSink88"}
EXPORTERS = """\
exporters:
  - {{type: jsonl, path: points.jsonl}}
  - {{type: influxdb, url: "{lines}", database: qos, create_database: false, name: lines,
     username: "process-${{QOS_LIFE_PROCESS}}", password: "${{QOS_LIFE_WORD}}", max_spool_mb: {spool_mb},
     flush_interval: 200ms, batch_size: 40}}
  - {{type: alertmanager, url: "{am}", resend: {resend}s, name: am, auth: {{bearer: "${{QOS_LIFE_BEARER}}"}}}}
  - {{type: webhook, url: "{hook_json}", format: json, name: hook-json,
     headers: {{X-Life-Process: "${{QOS_LIFE_PROCESS}}"}}}}
  - {{type: webhook, url: "{hook_pd}", format: pagerduty, routing_key: R0UTINGKEY, name: hook-pd,
     headers: {{X-Life-Process: "${{QOS_LIFE_PROCESS}}"}}}}
"""


def to_point(line: str) -> Point | None:
    try:
        d = json.loads(line)
        return Point(d["measurement"], tuple(d["tags"].items()), tuple(d["fields"].items()), int(d["time_ms"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a line a kill -9 tore


class PointsFile:
    """The jsonl sink's file, read as the agent wrote it: `take(n)` hands out lines up to the n-th once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.taken = 0
        self.torn = 0
        self._offset = 0

    def refresh(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            whole = chunk[: chunk.rfind(b"\n") + 1]
            self._offset += len(whole)
            self.lines += whole.decode(errors="replace").splitlines()
        return len(self.lines)

    def mend(self) -> None:
        """After a kill -9: end a torn last line, so the next process starts on a line of its own."""
        if self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            with open(self.path, "ab") as f:
                f.write(b"\n")
            self.torn += 1
        self.refresh()

    def take(self, upto: int | None = None) -> list[Point]:
        if upto is None:
            upto = self.refresh()
        else:
            wait_for(lambda: self.refresh() >= upto, 10, f"the {upto} lines /healthz says were written",
                     detail=lambda: f"the jsonl file has {len(self.lines)} lines")
        points = [p for p in map(to_point, self.lines[self.taken:upto]) if p is not None]
        self.taken = upto
        return points

    def runs_since_taken(self) -> Counter[str]:
        """Journey runs written since the last `take`, by journey."""
        self.refresh()
        return Counter(p.tag("journey") or "" for p in map(to_point, self.lines[self.taken:])
                       if p is not None and p.measurement == "journey")


class LivezWatch:
    """Polls `/livez` every 0.25 s in a thread while an agent is up; every answer but 200 is kept."""

    def __init__(self) -> None:
        self.url = ""
        self.polls = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livez", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                if not self.url:
                    continue
                try:
                    status, body = get(self.url + "/livez", timeout=10)
                except OSError as e:
                    status, body = 0, str(e)
                self.polls += 1
                if status != 200:
                    self.failures.append(f"/livez {status}: {body[:300]}")

    def watch(self, url: str) -> None:
        with self._lock:
            self.url = url

    def pause(self) -> None:
        """Before the process is stopped (waits for a poll under way)."""
        with self._lock:
            self.url = ""

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Tally:
    """What a life did, for the report and docs/benchmarks.md."""

    events: int = 0
    checks: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    opens: int = 0
    closes: int = 0
    line_repeats_after_kill: int = 0
    hook_repeats_after_kill: int = 0
    livez_polls: int = 0
    seconds: float = 0.0


@dataclass
class Repeats:
    """What one receiver's receipts said so far (each is checked once)."""

    done: int = 0
    first: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)  # id -> (process, when)
    per_process: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    after_kill: int = 0


def starts_ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def sink(body: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in body["sinks"] if s["type"] == type_)
    return found


class Driver:
    """One seeded life: `with Driver(root, seed, n) as d: d.play()` (AssertionError names the event)."""

    def __init__(self, root: Path, seed: int, count: int) -> None:
        self.root, self.seed, self.count = root, seed, count
        self.path = root / "journeys.yaml"
        self.life = Life()
        self.ledger = Observed()
        self.loop = LoopThread()
        self.hooks = HookRecorder()
        self.lines = LineRecorder(seed)
        self.lines.flaky = FLAKY
        self.am = AlertmanagerServer(root / "alertmanager")
        self.demo = DemoProcess()
        self.file = PointsFile(root / "state" / "points.jsonl")
        self.livez = LivezWatch()
        self.agent: AgentProcess | None = None
        self.generation = 0
        self.killed_at: dict[int, float] = {}  # generation started after a kill -9 -> when it was killed
        self.drained: dict[str, list[float]] = {}  # sink -> when /healthz showed its spool empty
        self.base_lines = 0  # jsonl lines before this process wrote any
        self.spool_at_start = 0
        self.fault_ids: dict[str, int] = {}
        self.rng = random.Random(seed)  # how each outage looks: refused connections or 503s
        self.lines_stopped = False
        self.tally = Tally()
        self.repeats = {"lines": Repeats(), "hooks": Repeats()}

    # -- the world ------------------------------------------------------------------------------------------
    def __enter__(self) -> Driver:
        try:
            self.demo.__enter__()
            self.am.start()
            self.loop.run(self.hooks.start())
            self.loop.run(self.lines.start())
            self.write_file()
            self.start_agent(killed=False)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.livez.close()
        if self.agent is not None:
            self.agent.stop()
            self.keep_log(self.agent, check=exc_type is None)  # a failure under way is the one to report
        self.demo.stop()
        self.am.stop()
        with contextlib.suppress(Exception):
            self.loop.run(self.hooks.stop())
            self.loop.run(self.lines.stop())
        self.loop.close()

    def write_file(self) -> None:
        exporters = EXPORTERS.format(lines=self.lines.url, spool_mb=SPOOL_MB, am=self.am.url, resend=int(RESEND_S),
                                     hook_json=self.hooks.url("json"), hook_pd=self.hooks.url("pagerduty"))
        self.path.write_text(render(self.life, base=self.demo.url, interval=f"{INTERVAL_S:g}s",
                                    extra_agent=', listen: "127.0.0.1:0"', exporters=exporters, path=PATH,
                                    expect=EXPECT))

    def start_agent(self, killed: bool) -> None:
        self.file.mend()
        self.base_lines = len(self.file.lines)
        self.spool_at_start = self.spool_rows()
        self.generation += 1
        if killed:
            self.killed_at[self.generation] = time.monotonic()
        self.agent = AgentProcess(self.path, cwd=self.root, start_timeout=60,
                                  env={"QOS_LIFE_PROCESS": str(self.generation), **CREDENTIALS}).__enter__()
        agent = self.agent
        self.ok_within(lambda: get(agent.url + "/readyz")[0] == 200, 30, "/readyz to say ready")
        self.livez.watch(agent.url)

    def spool_rows(self) -> int:
        """What the network sink's spool holds (read while no agent runs)."""
        path = self.root / "state" / "spool" / "lines.db"
        if not path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(path)) as db:
            return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def keep_log(self, agent: AgentProcess, check: bool = True) -> None:
        """Keep the process's log as agent-N.log (the next one would overwrite it); no traceback in it."""
        log = agent.log()
        if agent.log_path.exists():
            shutil.move(agent.log_path, self.root / f"agent-{self.generation}.log")
        if check:
            self.ok("Traceback" not in log, f"a traceback in the agent's log:\n{log[-3000:]}")

    def health(self) -> dict[str, Any]:
        """/healthz now; a sink seen with an empty spool had settled everything accepted before the request."""
        assert self.agent is not None
        asked = time.monotonic()
        body = self.agent.healthz()[1]
        for s in body["sinks"]:
            if s["spooled"] == 0 and s["type"] in ("influxdb", "webhook"):
                self.drained.setdefault(s["name"], []).append(asked)
        return body

    def ok(self, condition: bool, message: str) -> None:
        self.tally.checks += 1
        if not condition:
            raise AssertionError(message)

    def ok_within(self, check: Callable[[], T | None], limit_s: float, what: str,
                  detail: Callable[[], str] | None = None) -> T:
        """`ok` for a state that comes in its own time: `wait_for`, counted as a check like `ok`."""
        self.tally.checks += 1
        return wait_for(check, limit_s, what, detail=detail)

    # -- the life -------------------------------------------------------------------------------------------
    def play(self) -> Tally:
        began = time.monotonic()
        self.started(Event("restart"))
        for n, e in enumerate(events(self.seed, self.count, outages=True), 1):
            before = copy.deepcopy(self.life)
            self.life.apply(e)
            took = time.monotonic()
            try:
                self.step(e, before)
            except AssertionError as failure:
                raise AssertionError(f"seed {self.seed}, event {n} ({e}): {failure}") from None
            print(f"  {n:3} {e}: {time.monotonic() - took:.1f} s, open {sorted(self.ledger.open_now())}")
            self.tally.events += 1
            self.tally.kinds[e.kind] += 1
        try:
            self.finale()
        except AssertionError as failure:
            raise AssertionError(f"seed {self.seed}, the end (all healed, receiver up): {failure}") from None
        self.tally.checks += self.ledger.checks
        self.tally.opens, self.tally.closes = len(self.ledger.opens), len(self.ledger.closes)
        self.tally.livez_polls = self.livez.polls
        self.tally.seconds = time.monotonic() - began
        return self.tally

    def step(self, e: Event, before: Life) -> None:
        if e.kind == "restart":
            self.restart(e, before)
            return
        if e.kind in RELOADS:
            self.reload(e, before)
        elif e.kind == "runs":
            self.wait_runs(e.rounds)
        elif e.kind == "fault":
            self.set_faults()
        elif e.kind == "outage":
            self.outage(e.flag)
        if e.kind != "runs":
            self.wait_runs(1)  # the world goes on between two events: every journey runs once
        body, points = self.quiet()
        self.ledger.feed(e, points, self.life, before)
        self.settled(e, body)

    def wait_runs(self, rounds: int) -> None:
        ours = self.life.ours()
        if not ours:
            time.sleep(rounds * INTERVAL_S)  # nothing of ours runs: time passes all the same
            return
        self.ok_within(lambda: all(self.file.runs_since_taken()[n] >= rounds for n in ours),
                       rounds * INTERVAL_S * 4 + 20, f"{ours} to run {rounds} times",
                       detail=lambda: f"runs: {self.file.runs_since_taken()}")

    def set_faults(self) -> None:
        for target in sorted(self.life.broken - set(self.fault_ids)):
            (rule,) = self.demo.add_faults([f"path={PATH.format(target=target)},status=503"])
            self.fault_ids[target] = int(rule["id"])
        for target in sorted(set(self.fault_ids) - self.life.broken):
            self.demo.remove_fault(self.fault_ids.pop(target))

    def outage(self, down: bool) -> None:
        """Down: the receiver refuses everything; while journeys run, the driver waits until the spool has
        dropped its oldest (an outage longer than the spool), which is `unhealthy` on /healthz and never
        a 503 on /livez."""
        if down and self.rng.random() < 0.5:
            self.loop.run(self.lines.stop())  # nobody listens: connection refused (the port is kept)
            self.lines_stopped = True
        elif down:
            self.lines.down = True  # it answers 503 to everything
        else:
            self.lines_up()
        if not down or not self.life.ours():
            return  # with no journey of its own the agent makes a point every 10 s: it would take many minutes
        assert self.agent is not None
        agent = self.agent
        dropped = sink(self.health(), "influxdb")["dropped_by_cause"].get("spool_full", 0)

        def overflowed() -> tuple[int, dict[str, Any]] | None:
            answer = agent.healthz()
            return answer if sink(answer[1], "influxdb")["dropped_by_cause"].get("spool_full", 0) > dropped else None

        status, body = self.ok_within(overflowed, 60, "the spool to overflow during the outage")
        self.ok(status == 503 and any("spool_full" in p for p in body["problems"]),
                f"a spool dropping its oldest is not unhealthy on /healthz: {status} {body['problems']}")

    def lines_up(self) -> None:
        self.lines.down = False
        if self.lines_stopped:
            self.loop.run(self.lines.start())
            self.lines_stopped = False

    def reload(self, e: Event, before: Life) -> None:
        assert self.agent is not None
        was = self.health()
        read_at = time.monotonic()
        self.write_file()
        self.agent.hup()
        now = self.ok_within(lambda: (b := self.health())["reloads"] + b["reload_failures"]
                             > was["reloads"] + was["reload_failures"] and b, 30, "the reload (SIGHUP)")
        self.ok(now["reloads"] == was["reloads"] + 1 and now["reload_error"] == "",
                f"the reload was refused: {now['reload_error']}")
        ticks = math.ceil((time.monotonic() - read_at) / (0.95 * INTERVAL_S)) + 1
        interval_ms = INTERVAL_S * 1000
        for name in sorted(set(was["next_run"]) & set(now["next_run"])):
            if name not in before.target or name not in self.life.target:
                continue
            if before.definition(name) != self.life.definition(name):
                continue  # its meaning changed: a fresh offset is right
            moved = now["next_run"][name]["time_ms"] - was["next_run"][name]["time_ms"]
            kept = any(k * 0.95 * interval_ms - PHASE_TOLERANCE_MS <= moved <= k * interval_ms + PHASE_TOLERANCE_MS
                       for k in range(ticks + 1))
            self.ok(kept, f"{name} lost its schedule phase in a reload that kept its meaning: its next run moved "
                          f"by {moved} ms ({was['next_run'][name]} -> {now['next_run'][name]})")

    def restart(self, e: Event, before: Life) -> None:
        assert self.agent is not None
        self.livez.pause()
        if e.flag:
            self.agent.kill()
        else:
            code = self.agent.stop(60)
            self.ok(code == 0, f"SIGTERM: exit code {code}")
        self.keep_log(self.agent)
        self.file.mend()
        self.ledger.feed(e, self.file.take(), before, before)  # what the old process wrote last
        if e.edit is not None:
            self.write_file()  # changed while the agent was down
        self.start_agent(killed=e.flag)
        self.started(e)

    def started(self, e: Event) -> None:
        """A process just started: what it announced before its first run, then its runs."""
        self.wait_runs(1)  # the first run after the start decides what healed while it was down
        body, points = self.quiet()
        first_run = next((k for k, p in enumerate(points) if p.measurement == "journey"), len(points))
        self.ledger.started(e, [p for p in points[:first_run] if p.measurement == "disruption"], self.life)
        self.ledger.feed(e, points[first_run:], self.life, self.life)
        self.settled(e, body)

    def finale(self) -> None:
        """Everything healed and the receiver up: every disruption closes, every alert resolves, the
        spool drains, and SIGTERM exits 0."""
        end = Event("runs", rounds=CLOSE_AFTER + 1)
        before = copy.deepcopy(self.life)
        self.lines_up()
        self.lines.flaky = 0.0
        self.life.broken.clear()
        self.set_faults()
        self.wait_runs(CLOSE_AFTER + 1)
        body, points = self.quiet()
        self.ledger.feed(end, points, self.life, before)
        self.settled(end, body)
        self.ok(not self.ledger.open_now(), f"open at the end: {self.ledger.open_now()}")
        self.ok_within(lambda: sink(self.health(), "influxdb")["spooled"] == 0, 60, "the spool to drain",
                       detail=lambda: f"{sink(self.health(), 'influxdb')}")
        assert self.agent is not None
        answers = json.dumps(self.health()) + self.agent.metrics()
        self.livez.pause()
        code = self.agent.stop(60)
        self.ok(code == 0, f"SIGTERM: exit code {code}")
        self.keep_log(self.agent)
        self.agent = None
        self.ledger.feed(end, self.file.take(), self.life, self.life)
        self.credentials_nowhere(answers)
        self.no_repeats()
        self.ok(not self.hooks.problems, f"webhook bodies off their format: {self.hooks.problems[:3]}")

    # -- the checks -----------------------------------------------------------------------------------------
    def credentials_nowhere(self, answers: str) -> None:
        """The sinks' credentials went out on the wire and are in no log, no file under state_dir (spools,
        alert books, the open disruptions, the jsonl file, byte for byte) and no /healthz or /metrics."""
        self.ok(CREDENTIALS["QOS_LIFE_WORD"] in self.lines.passwords, "the line sink's password never went out")
        places = {str(p.relative_to(self.root)): p.read_bytes() for p in sorted(self.root.rglob("*"))
                  if p.is_file() and (p.name.startswith("agent-") or "state" in p.parts)}
        places["/healthz and /metrics"] = answers.encode()
        books = any("alerts" in w for w in places) or not self.ledger.opens  # written once something opened
        self.ok(any("spool" in w for w in places) and books and any(w.startswith("agent-") for w in places),
                f"nothing to search: {sorted(places)}")
        for secret in CREDENTIALS.values():
            forms = {secret.encode(), *(base64.b64encode(f"process-{g}:{secret}".encode())
                                        for g in range(1, self.generation + 1))}
            leaks = [where for where, data in places.items() if any(f in data for f in forms)]
            self.ok(not leaks, f"a sink credential is stored in {leaks}")


    def quiet(self) -> tuple[dict[str, Any], list[Point]]:
        """A /healthz body with nothing queued in any sink, and the points written up to it."""
        def still() -> dict[str, Any] | None:
            b = self.health()
            return b if all(s["queued"] == 0 for s in b["sinks"]) else None

        body = self.ok_within(still, 30, "a quiet moment (nothing queued in any sink)")
        return body, self.file.take(self.base_lines + sink(body, "jsonl")["delivered"])

    def settled(self, e: Event, body: dict[str, Any]) -> None:
        self.ledger.settled(e, self.life)
        self.conserved(body)
        self.alerts_match()
        self.hooks_match()
        self.no_repeats()
        self.ok(not self.livez.failures, f"/livez was not 200: {self.livez.failures[:3]}")

    def conserved(self, body: dict[str, Any]) -> None:
        jsonl, lines = sink(body, "jsonl"), sink(body, "influxdb")
        made = jsonl["delivered"] + jsonl["queued"] + jsonl["dropped"] + self.spool_at_start
        counted = lines["delivered"] + lines["spooled"] + lines["queued"] + lines["dropped"] + lines["dead_lettered"]
        self.ok(made == counted, f"counters do not conserve: made {made} (spool at start {self.spool_at_start}) "
                                 f"!= {counted} {lines}")

    def alerts_match(self) -> None:
        """Alertmanager's active alerts of this agent are the open disruptions, within one resend."""
        want = set(self.ledger.open_now())

        seen: set[Id] = set()

        def same() -> bool:
            nonlocal seen
            with contextlib.suppress(OSError):
                seen = {(a["labels"]["journey"], a["labels"]["region"], starts_ms(a["startsAt"]))
                        for a in self.am.alerts() if a["labels"].get("agent") == AGENT}
            return seen == want

        self.ok_within(same, RESEND_S + 5, "Alertmanager's active alerts of this agent to be the open disruptions",
                       detail=lambda: f"active {sorted(seen)}, open {sorted(want)}")

    def hooks_match(self) -> None:
        """Each webhook was told every open disruption firing, and resolved with the same key every one it
        was told firing that has closed since; nothing of a disruption the agent never opened, no resolve
        of one still open. (A disruption a kill -9 interrupted and a start then closed as `removed` may be
        told its resolve alone: the book never saw it open.)"""
        key = f"qos-agent/{AGENT}" + "/{}/{}/{}"
        every = {key.format(*i) for i in self.ledger.opens}
        closed = {key.format(*i) for i in self.ledger.closes}
        still_open = every - closed

        def told(fmt: str) -> tuple[set[str], set[str]]:
            c = self.hooks.told(fmt)
            return {k for k, s in c if s == "firing"}, {k for k, s in c if s == "resolved"}

        def wrong(fmt: str) -> list[str]:
            firing, resolved = told(fmt)
            return [f"{what}: {sorted(these)}" for what, these in (
                ("open but never told firing", still_open - firing), ("firing for no disruption", firing - every),
                ("closed, told firing, never resolved", firing & closed - resolved),
                ("resolved but still open", resolved - closed)) if these]

        for fmt in ("json", "pagerduty"):
            self.ok_within(lambda f=fmt: not wrong(f), 15,  # type: ignore[misc]
                           f"the {fmt} webhook told what the disruptions say",
                           detail=lambda f=fmt: "; ".join(wrong(f)))  # type: ignore[misc]

    def no_repeats(self) -> None:
        """No record twice from one process; from a later one only after a kill -9 that came while it was
        under way (before the sink's spool was seen empty after it was accepted). A line's disruption
        points are left out: a start announces the open ones again (made again, identical: the same id),
        and one still spooled from the last process goes too; what a disruption told is checked once per
        process on the webhooks, whose book drops those repeats. Each receipt is checked once, as it comes."""
        for name, receipts in (("lines", self.lines.taken()), ("hooks", self.hooks.taken())):
            seen = self.repeats[name]
            for r in receipts[seen.done:]:
                self.ok(r.generation > 0, f"{name}: {r.id} came from no known process (the header is missing)")
                if r.kind == "disruption":
                    continue
                key = (r.kind, r.id)
                seen.per_process[(*key, r.generation)] += 1
                self.ok(seen.per_process[(*key, r.generation)] == 1, f"{name}: {r.id} delivered twice by process "
                        f"{r.generation}; every receipt of it: {[x for x in receipts if x.id == r.id]}")
                if key not in seen.first:
                    seen.first[key] = (r.generation, r.at)
                elif r.generation != seen.first[key][0]:
                    g1, t1 = seen.first[key]
                    self.ok(self._under_way(SINK_OF.get(r.kind, "influxdb#1"), g1, t1, r.generation),
                            f"{name}: {r.id} sent again by process {r.generation}, accepted from process {g1}, "
                            "with no kill -9 while it was under way")
                    seen.after_kill += 1
            seen.done = len(receipts)
        self.tally.line_repeats_after_kill = self.repeats["lines"].after_kill
        self.tally.hook_repeats_after_kill = self.repeats["hooks"].after_kill

    def _under_way(self, sink_name: str, g1: int, accepted: float, g2: int) -> bool:
        """A kill -9 between process g1 and g2 came before the sink's spool was next seen empty after the
        record was accepted: its settling may not have been stored, so a repeat is at least once."""
        drained = self.drained.get(sink_name, [])
        return any(g1 < g <= g2 and not any(accepted < d < killed for d in drained)
                   for g, killed in self.killed_at.items())
