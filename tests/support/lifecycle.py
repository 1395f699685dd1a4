"""A seeded life of an agent (issue 23): the events an operator and the world put it through, the file
each reload writes, and the invariants about disruptions that must hold after every event.

- `Life` is the world: which journeys the file names (in file order), which are moved to another
  region, the agent's shard, which targets are broken, the file's layout (comments, blank lines, key
  order: `Relayout` changes the marks, never the meaning).
- `events(seed, count)` draws the sequence; `Life.apply(event)` changes the world; `render(life, ...)`
  is the journeys.yaml a driver writes before it reloads or restarts.
- `Ledger` reads what the sinks were told (disruption points, in order) and checks, after each event:
  every close matches an open; a disruption closes at most once (a repeat is identical to the first,
  and only a start may repeat: opens at any start, closes after a kill -9); `close_reason` is
  `healed` for a close made by runs and `removed` for one made by a reload or a start, whose journey
  then is not this agent's; nothing is left open for a journey that is not this agent's; a journey
  healthy for `CLOSE_AFTER` runs has nothing open, one broken for `OPEN_AFTER` runs since it last
  changed hands has something open; a restart keeps every open disruption with its open time and
  announces it again, and the first run after it closes one whose target healed; a reload keeps the schedule phase of every
  journey whose meaning it did not change.

A driver gives `Ledger.check` the event, the points told meanwhile and, when it can, each scheduled
journey's phase token (something that changes when its timing is re-planned). The in-process driver
is tests/test_lifecycle_inprocess.py.

A real process runs its journeys all the time, not only in `runs` events, so `Observed` (a Ledger)
takes the runs from the journey points the agent wrote, in the order it wrote them with its
disruption points, and checks the same promises against them; `events(..., outages=True)` adds
sink outages (`outage` on/off). The real-process driver is tests/support/lifecycle_process.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from qos_agent.model import Point
from qos_agent.runloop.placement import shard_of

AGENT, REGION, ELSEWHERE = "agent-ap", "ap-south", "eu-west"
OPEN_AFTER, CLOSE_AFTER = 2, 3


@dataclass(frozen=True)
class Event:
    """One thing that happens. `kind` is one of KINDS; the other fields as the kind needs them."""

    kind: str
    journey: str = ""
    to: str = ""  # rename: the new name; shard: "" | "1/2" | "2/2"
    flag: bool = False  # fault: on; move: away; restart: kill -9 (else SIGTERM); outage: down
    rounds: int = 0  # runs: how many times every journey of the agent runs
    layout: int = 0  # relayout: the new layout's seed
    edit: Event | None = None  # restart: a change to the file made while the agent was down

    def __str__(self) -> str:
        down = f", the file edited meanwhile: {self.edit}" if self.edit else ""
        what = {"runs": f"{self.rounds} round(s)", "fault": f"{self.journey} {'on' if self.flag else 'off'}",
                "rename": f"{self.journey} -> {self.to}", "move": f"{self.journey} {'away' if self.flag else 'back'}",
                "shard": self.to or "none", "restart": ("kill -9" if self.flag else "SIGTERM") + down,
                "relayout": f"layout {self.layout}", "outage": "down" if self.flag else "up"}.get(self.kind, self.journey)
        return f"{self.kind} {what}"


RELOADS = ("add", "remove", "rename", "move", "shard", "relayout")
KINDS = ("runs", "fault", "restart", *RELOADS)


@dataclass
class Life:
    names: list[str] = field(default_factory=lambda: ["j1", "j2", "j3"])
    target: dict[str, str] = field(default_factory=lambda: {"j1": "t1", "j2": "t2", "j3": "t3"})
    away: set[str] = field(default_factory=set)  # `regions: [ELSEWHERE]`
    shard: str = ""
    broken: set[str] = field(default_factory=set)  # targets
    layout: int = 0
    made: int = 3  # names and targets made so far
    down: bool = False  # the network sink's receiver refuses everything (an outage)

    def owned(self, name: str) -> bool:
        """The agent runs it: named in the file, in its region, in its shard."""
        if name not in self.target or name in self.away:
            return False
        if not self.shard:
            return True
        index, count = (int(x) for x in self.shard.split("/"))
        return shard_of(name, count) == index

    def ours(self) -> list[str]:
        return [n for n in self.names if self.owned(n)]

    def is_broken(self, name: str) -> bool:
        return self.target[name] in self.broken

    def definition(self, name: str) -> tuple[str, bool]:
        """What the file says of a journey apart from its name: equal means the same meaning."""
        return self.target[name], name in self.away

    def apply(self, e: Event) -> None:
        if e.kind == "add":
            self.made += 1
            self.names.append(e.journey)
            self.target[e.journey] = f"t{self.made}"
        elif e.kind == "remove":
            self.names.remove(e.journey)
            del self.target[e.journey]
            self.away.discard(e.journey)
        elif e.kind == "rename":
            self.names[self.names.index(e.journey)] = e.to
            self.target[e.to] = self.target.pop(e.journey)
            if e.journey in self.away:
                self.away.remove(e.journey)
                self.away.add(e.to)
        elif e.kind == "move":
            (self.away.add if e.flag else self.away.discard)(e.journey)
        elif e.kind == "shard":
            self.shard = e.to
        elif e.kind == "relayout":
            self.layout = e.layout
        elif e.kind == "fault":
            (self.broken.add if e.flag else self.broken.discard)(self.target[e.journey])
        elif e.kind == "outage":
            self.down = e.flag
        elif e.kind == "restart" and e.edit is not None:
            self.apply(e.edit)


def events(seed: int, count: int, outages: bool = False) -> list[Event]:
    """A seeded sequence of `count` events that is valid from the start state (`Life()`); with `outages`,
    the network sink's receiver also goes down and comes back (a seed without them draws as before)."""
    rng = random.Random(seed)
    life = Life()
    out: list[Event] = []
    weights = {"runs": 30, "fault": 18, "restart": 8, "add": 8, "remove": 6, "rename": 7, "move": 7,
               "shard": 5, "relayout": 8, **({"outage": 6} if outages else {})}
    while len(out) < count:
        kind = rng.choices(list(weights), list(weights.values()))[0]
        broken = [n for n in life.names if life.is_broken(n)]
        if out and out[-1].kind == "restart" and broken and rng.random() < 0.5:
            e: Event | None = Event("fault", rng.choice(broken), flag=False)  # healed while it was down
        elif kind == "outage":
            e = Event("outage", flag=not life.down)
        elif kind == "restart":
            edit = _change(rng, life, rng.choice(RELOADS)) if rng.random() < 0.35 else None
            e = Event("restart", flag=rng.random() < 0.5, edit=edit)
        else:
            e = _change(rng, life, kind)
        if e is None:
            continue
        life.apply(e)
        out.append(e)
    return out


def _change(rng: random.Random, life: Life, kind: str) -> Event | None:
    """One event of `kind` that makes sense in `life` (None when it does not: e.g. removing the last journey)."""
    names = life.names
    if kind == "runs":
        return Event("runs", rounds=rng.randint(1, 4))
    if kind == "fault":
        name = rng.choice(names)
        return Event("fault", name, flag=not life.is_broken(name) if rng.random() < 0.8 else life.is_broken(name))
    if kind == "add":
        return Event("add", f"j{life.made + 1}") if len(names) < 8 else None
    if kind in ("remove", "rename") and len(names) <= 1:
        return None
    if kind == "remove":
        return Event("remove", rng.choice(names))
    if kind == "rename":
        life.made += 1
        return Event("rename", rng.choice(names), to=f"j{life.made}x")
    if kind == "move":
        name = rng.choice(names)
        return Event("move", name, flag=name not in life.away)
    if kind == "shard":
        return Event("shard", to=rng.choice(["", "1/2", "2/2"]))
    return Event("relayout", layout=rng.randint(1, 10**6))


def render(life: Life, base: str = "http://127.0.0.1:9", interval: str = "1h", state_dir: str = "state",
           extra_agent: str = "", exporters: str = "", path: str = "/t/{target}", expect: str = "") -> str:
    """journeys.yaml of this life; the layout (comments, blank lines, key order) follows `life.layout`.
    Each journey GETs `base` + `path` (`{target}` filled), with `expect` (YAML flow, e.g. "{status: 404}")."""
    rng = random.Random(life.layout)

    def noise() -> str:
        return rng.choice(["", "", "\n", f"# note {rng.randint(0, 99)}\n", "\n# --\n\n"]) if life.layout else ""

    shard = f", shard: {life.shard}" if life.shard else ""
    agent = (f"agent: {{state_dir: {state_dir}, region: {REGION}, name: {AGENT}, interval: {interval}"
             f"{shard}{extra_agent}}}\n")
    top = [agent, f'variables: {{base: "{base}"}}\n',
           f"defaults: {{disruption: {{open_after: {OPEN_AFTER}, close_after: {CLOSE_AFTER}}}}}\n"]
    if life.layout:
        rng.shuffle(top)
    out = [noise(), "version: 1\n", *top, exporters, "journeys:\n"]
    for name in life.names:
        keys = [f"name: {name}", f"tags: {{target: {life.target[name]}}}",
                "steps:\n      - " + _step(rng, life.layout, path.format(target=life.target[name]), expect)]
        if name in life.away:
            keys.append(f"regions: [{ELSEWHERE}]")
        if life.layout:
            rng.shuffle(keys)
        out.append(noise() + "  - " + "\n    ".join(keys) + "\n")
    return "".join(out)


def _step(rng: random.Random, layout: int, path: str, expect: str) -> str:
    keys = ["name: get", f'http: {{url: "{{{{ base }}}}{path}"}}', *([f"expect: {expect}"] if expect else [])]
    if layout:
        rng.shuffle(keys)
    return "\n        ".join(keys)


Id = tuple[str, str, int]  # journey, region, opened_ms


def ident(p: Point) -> Id:
    opened = p.field("opened_ms")
    assert isinstance(opened, int), p
    return str(p.tag("journey")), str(p.tag("region")), opened


@dataclass
class Ledger:
    """What the sinks were told, and the checks after each event (AssertionError names the broken one)."""

    opens: dict[Id, Point] = field(default_factory=dict)
    closes: dict[Id, Point] = field(default_factory=dict)
    streaks: dict[str, tuple[bool, int]] = field(default_factory=dict)  # journey -> (broken, runs in a row)
    restarted: set[str] = field(default_factory=set)  # journeys not run yet since the last start
    checks: int = 0

    def open_now(self) -> dict[Id, Point]:
        return {i: p for i, p in self.opens.items() if i not in self.closes}

    def check(self, e: Event, told: list[Point], life: Life, before: Life, phases: tuple[Any, Any] | None) -> None:
        """After `e` (already applied to `life`; `before` is the world before it), with the points it told."""
        open_before = {i for i in self.open_now() if life.owned(i[0])}  # and still this agent's after it
        for p in told:
            self._point(e, p, life, before)
        if e.kind == "runs":
            self._count_runs(e, before)
            for name in self.restarted & set(before.ours()):  # healed while down: its first run closes it
                self._ok(before.is_broken(name) or not any(i[0] == name for i in self.open_now()),
                         f"{name} passed its first run after a restart, but its disruption is still open ({e})")
            self.restarted.clear()
        elif e.kind == "restart":
            self.restarted = set(life.ours())
        for name in list(self.streaks):
            if not life.owned(name) or e.kind == "restart":
                del self.streaks[name]  # a fresh window from here
        for i in self.open_now():
            self._ok(life.owned(i[0]), f"{i} is open but {i[0]} is not this agent's (after {e})")
        for name in life.ours():
            broken, run = self.streaks.get(name, (False, 0))
            opened = [i for i in self.open_now() if i[0] == name]
            if not broken and run >= CLOSE_AFTER:
                self._ok(not opened, f"{name} healthy for {run} runs but {opened} is open (after {e})")
            if broken and run >= OPEN_AFTER:
                self._ok(len(opened) == 1, f"{name} broken for {run} runs but open: {opened} (after {e})")
        if e.kind == "restart":
            kept = {i for i in self.open_now() if life.owned(i[0])}
            self._ok(kept == open_before, f"a restart changed the open disruptions: {open_before} -> {kept}")
            announced = {ident(p) for p in told if p.tag("state") == "open"}
            self._ok(announced >= kept, f"a restart did not announce {kept - announced} again")
        if phases is not None and e.kind in RELOADS:
            old, new = phases
            for name in set(old) & set(new):
                same = name in before.target and name in life.target and before.definition(name) == life.definition(name)
                if same:
                    self._ok(old[name] is new[name], f"{name} lost its schedule phase in a reload that kept it ({e})")

    def _point(self, e: Event, p: Point, life: Life, before: Life) -> None:
        i = ident(p)
        if p.tag("state") == "open":
            if i in self.opens:
                self._ok(e.kind == "restart" and p == self.opens[i], f"{i} opened again: {p} ({e})")
                return
            self._ok(e.kind == "runs" and before.owned(i[0]) and before.is_broken(i[0]), f"unexpected open {p} ({e})")
            self.opens[i] = p
            return
        self._ok(i in self.opens, f"a close without its open: {p} ({e})")
        if i in self.closes:
            self._ok(e.kind == "restart" and e.flag and p == self.closes[i], f"{i} closed twice: {p} ({e})")
            return
        why = p.field("close_reason")
        if e.kind == "runs":
            self._ok(why == "healed" and not before.is_broken(i[0]), f"a close by runs must be healed: {p} ({e})")
        else:
            self._ok(why == "removed" and not life.owned(i[0]), f"a close by {e.kind} must be removed: {p} ({e})")
        self._ok(p.tags == tuple((k, "close" if k == "state" else v) for k, v in self.opens[i].tags),
                 f"the close's tags are not its open's: {p}")
        self.closes[i] = p

    def _count_runs(self, e: Event, before: Life) -> None:
        for name in before.ours():
            broken = before.is_broken(name)
            was, run = self.streaks.get(name, (broken, 0))
            self.streaks[name] = (broken, run + e.rounds if was == broken else e.rounds)

    def _ok(self, condition: bool, message: str) -> None:
        self.checks += 1
        if not condition:
            raise AssertionError(message)


@dataclass
class Observed(Ledger):
    """The Ledger for a real process. Its journeys run all the time (not only in `runs` events), so the
    checks about runs read each journey's own runs: the journey points the agent wrote, in the order it
    wrote them with its disruption points (one sink, one queue: a run's point comes before the
    disruption point it caused). `feed` takes them in that order, `started` the points a new process
    announces before its first run, and `settled` checks the state at a quiet moment (nothing in
    flight between the agent and the file). The evaluator's rules as seen from outside:
    - an open follows a failed run of an owned journey with nothing open; a start may repeat an open
      identical to the first (and, after a kill -9, tell one the file lost);
    - a `healed` close follows a good run, after `CLOSE_AFTER` good runs or as the first run after a
      start that found it open; a `removed` one comes from a reload or a start, for a journey that is
      not this agent's; after a kill -9 a start may repeat the recent closes, identical;
    - at a quiet moment: nothing open for a journey not this agent's; `OPEN_AFTER` failed runs in a
      row (since the last start, or since the journey became this agent's) mean one open, `CLOSE_AFTER`
      good ones none.
    """

    ran: dict[str, list[tuple[bool, bool]]] = field(default_factory=dict)  # journey -> (ok, good) per final run
    restored: dict[str, Id] = field(default_factory=dict)  # open at the last start, its journey not run since
    must_close: set[Id] = field(default_factory=set)  # restored, and the first run after the start was good

    def feed(self, e: Event, points: list[Point], life: Life, before: Life, *, start: bool = False) -> None:
        """Points the agent wrote during `e` (`start`: those a new process announced before its first run)."""
        for p in points:
            if p.measurement == "journey":
                self._ran(p, life, before)
            elif p.measurement == "disruption":
                self._told(e, p, life, before, start)

    def started(self, e: Event, announced: list[Point], life: Life) -> None:
        """A new process started on `life`'s file: what it announced before its first run."""
        open_before = {i for i in self.open_now() if life.owned(i[0])}
        self.feed(e, announced, life, life, start=True)
        kept = {i for i in self.open_now() if life.owned(i[0])}
        self._ok(kept == open_before, f"a restart changed the open disruptions: {open_before} -> {kept}")
        said = {ident(p) for p in announced if p.tag("state") == "open"}
        self._ok(said >= kept, f"a restart did not announce {kept - said} again")
        self.ran.clear()  # a fresh window for every journey
        self.restored = {i[0]: i for i in kept}
        self.must_close.clear()

    def settled(self, e: Event, life: Life) -> None:
        for name in [n for n in self.ran if not life.owned(n)]:
            del self.ran[name]  # a journey that comes back starts afresh
        for i in self.open_now():
            self._ok(life.owned(i[0]), f"{i} is open but {i[0]} is not this agent's (after {e})")
        for name in life.ours():
            runs = self.ran.get(name, [])
            opened = [i for i in self.open_now() if i[0] == name]
            failed, good = _trailing(runs, 0), _trailing(runs, 1)
            if failed >= OPEN_AFTER:
                self._ok(len(opened) == 1, f"{name} failed {failed} runs in a row but open: {opened} (after {e})")
            if good >= CLOSE_AFTER:
                self._ok(not opened, f"{name} passed {good} runs in a row but {opened} is open (after {e})")
        left = self.must_close - set(self.closes)
        self._ok(not left, f"{left} passed the first run after the start but were not closed (after {e})")

    def _ran(self, p: Point, life: Life, before: Life) -> None:
        name = str(p.tag("journey"))
        if p.field("final") is False or not (life.owned(name) or before.owned(name)):
            return
        outcome = p.field("outcome")
        ok = outcome in ("passed", "degraded")
        good = outcome == "passed" or (outcome == "degraded" and p.field("lagged") is True)
        self.ran.setdefault(name, []).append((ok, good))
        if name in self.restored:
            i = self.restored.pop(name)
            if good:
                self.must_close.add(i)

    def _told(self, e: Event, p: Point, life: Life, before: Life, start: bool) -> None:
        i = ident(p)
        name, runs = i[0], self.ran.get(i[0], [])
        lost_in_kill = start and e.kind == "restart" and e.flag  # the file may have lost what the sinks got
        if p.tag("state") == "open":
            if i in self.opens:
                self._ok(start and p == self.opens[i], f"{i} opened again: {p} ({e})")
                return
            after_failure = bool(runs) and not runs[-1][0]
            self._ok(after_failure or lost_in_kill, f"an open that no failed run caused: {p}, runs {runs} ({e})")
            self._ok(life.owned(name) or before.owned(name), f"an open for {name}, not this agent's: {p} ({e})")
            self._ok(not any(o[0] == name for o in self.open_now()), f"{name} opened while open: {p} ({e})")
            self.opens[i] = p
            return
        if i not in self.opens:  # after a kill -9 the file may have lost the open: the start closes it
            self._ok(lost_in_kill, f"a close without its open: {p} ({e})")
            self.opens[i] = Point(p.measurement, tuple((k, "open" if k == "state" else v) for k, v in p.tags), (),
                                  i[2])
        if i in self.closes:
            self._ok(lost_in_kill and p == self.closes[i], f"{i} closed twice: {p} ({e})")
            return
        why = p.field("close_reason")
        if why == "healed":
            after_good = bool(runs) and runs[-1][1] and (_trailing(runs, 1) >= CLOSE_AFTER or i in self.must_close)
            self._ok(after_good or lost_in_kill, f"a healed close not after its good runs: {p}, runs {runs} ({e})")
        else:
            self._ok(why == "removed" and (start or e.kind in RELOADS) and not life.owned(name),
                     f"a close by {e.kind} must be removed, for a journey not this agent's: {p} ({e})")
        self._ok(p.tags == tuple((k, "close" if k == "state" else v) for k, v in self.opens[i].tags),
                 f"the close's tags are not its open's: {p}")
        self.closes[i] = p
        self.must_close.discard(i)


def _trailing(runs: list[tuple[bool, bool]], which: int) -> int:
    """How many of the last runs in a row were failed (`which` 0: not ok) or good (`which` 1)."""
    n = 0
    for run in reversed(runs):
        if run[which] != (which == 1):
            break
        n += 1
    return n
