"""Every disruption opened is closed exactly once, by the evaluator (issue 23), on a simulated clock:
healed (`close_reason` healed), or its journey removed, renamed or moved away by a reload, or found
so at a restart (`removed`); the open ones survive a restart in state_dir (SIGTERM or kill -9) with
their open time, and one that healed meanwhile closes on the first good run; a damaged file is moved
aside, never a crash; the file is written only when a disruption opens or closes."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from bench.detection_sim import run, sim_journey
from qos_agent.config.loader import load_config
from qos_agent.model import AlertSpec, JourneyKind, Point
from qos_agent.quality.evaluator import Evaluator
from qos_agent.quality.openfile import DisruptionFile, file_for
from qos_agent.runloop.agent import Agent
from qos_agent.runloop.placement import shard_of

MIN = 60_000
CHECKOUT = replace(sim_journey(), tags=(("stage", "buy"),), alert=AlertSpec("page", "https://wiki/x"))
SEARCH = sim_journey("search")


def feed(ev: Evaluator, journey_name: str, start: int, oks: list[bool]) -> list[Point]:
    journey = ev.journeys[journey_name]
    out: list[Point] = []
    for i, ok in enumerate(oks):
        out += ev.observe([run(journey, (start + i) * MIN, ok, 500.0)])
    return out


def new(path: Path, *journeys: object, owned: list[str] | None = None, now: int = 0) -> Evaluator:
    return Evaluator([CHECKOUT, SEARCH, *journeys], "agent-ap", owned=owned, region="ap-south",  # type: ignore[list-item]
                     store=DisruptionFile(path), now_ms=now)


def test_healed_and_removed_closes_say_why(tmp_path: Path) -> None:
    ev = new(tmp_path / "d.json")
    (opened,) = feed(ev, "checkout", 0, [False, False])
    (healed,) = feed(ev, "checkout", 2, [True, True, True])
    assert healed.tag("state") == "close" and healed.field("close_reason") == "healed"
    assert healed.field("reason") == opened.field("reason") and healed.field("opened_ms") == opened.time_ms

    feed(ev, "checkout", 10, [False, False])
    assert [p.tag("state") for p in feed(ev, "search", 10, [False, False])] == ["open"]
    # A reload that keeps search but no longer gives checkout to this agent (removed, renamed, moved).
    closes = ev.update_journeys([CHECKOUT, SEARCH], owned=["search"], now_ms=13 * MIN)
    (removed,) = closes
    assert removed.tags == tuple((k, "close" if k == "state" else v) for k, v in ev.history[-1].opened.tags)  # type: ignore[union-attr]
    assert dict(removed.tags)["stage"] == "buy"  # the open point's tags: the alert it resolves has them
    assert (removed.field("close_reason"), removed.field("severity"), removed.time_ms) == ("removed", "page", 13 * MIN)
    assert removed.field("duration_s") == 120.0  # opened at minute 11
    assert feed(ev, "checkout", 14, [False] * 5) == []  # a run still in flight when it was removed: ignored
    assert [d.journey for d in ev.open_disruptions()] == ["search"]


def test_a_journey_back_after_removal_starts_afresh(tmp_path: Path) -> None:
    ev = new(tmp_path / "d.json")
    feed(ev, "checkout", 0, [False, False])
    assert len(ev.update_journeys([SEARCH], now_ms=3 * MIN)) == 1
    assert ev.update_journeys([CHECKOUT, SEARCH], now_ms=4 * MIN) == []
    assert feed(ev, "checkout", 5, [False]) == []  # one failure: a fresh streak, not the third
    assert [p.tag("state") for p in feed(ev, "checkout", 6, [False])] == ["open"]


def test_a_restart_keeps_the_open_time_and_a_first_good_run_closes(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    ev = new(path)
    (opened,) = feed(ev, "checkout", 0, [False, False])
    saved = json.loads(path.read_text())  # written before the point was returned: kill -9 loses nothing
    assert [e["point"]["time_ms"] for e in saved["open"]] == [opened.time_ms]

    # kill -9 (no stop): a new evaluator announces it again, exactly as first announced.
    again = new(path, now=5 * MIN)
    assert again.start_points() == [opened] and again.start_points() == []
    assert feed(again, "checkout", 6, [False]) == []  # still broken: stays open, same open time
    assert [d.opened_ms for d in again.open_disruptions()] == [opened.time_ms]
    assert feed(again, "checkout", 7, [True]) == []  # only the first run after a restart closes at once
    feed(again, "checkout", 8, [True, True])
    assert again.open_disruptions() == []

    # SIGTERM (stop), healed while down: the first good run after the restart closes it.
    (reopened,) = feed(again, "checkout", 20, [False, False])
    again.stop()
    third = new(path, now=30 * MIN)
    assert third.start_points() == [reopened]
    (closed,) = feed(third, "checkout", 31, [True])
    assert (closed.field("close_reason"), closed.time_ms, closed.field("opened_ms")) == ("healed", 31 * MIN, 21 * MIN)
    assert closed.field("success_ratio") == 1.0 and json.loads(path.read_text())["open"] == []


def test_at_start_a_journey_no_longer_ours_is_closed_removed(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    ev = new(path)
    (checkout,) = feed(ev, "checkout", 0, [False, False])
    (search,) = feed(ev, "search", 0, [False, False])
    ev.stop()
    later = Evaluator([SEARCH], "agent-ap", region="ap-south", store=DisruptionFile(path), now_ms=9 * MIN)
    points = later.start_points()
    assert [(p.tag("journey"), p.tag("state"), p.field("close_reason")) for p in points] == [
        ("search", "open", None), ("checkout", "close", "removed")]
    close = points[1]
    assert close.time_ms == 9 * MIN and close.field("opened_ms") == checkout.time_ms
    assert dict(close.tags)["stage"] == "buy" and close.field("severity") == "page"
    assert close.field("success_ratio") is None  # no run seen: no window to speak of
    later.stop()
    # Another region's agent (the same name, its region changed): its disruptions are not this one's.
    moved = Evaluator([SEARCH], "agent-ap", region="eu-west", store=DisruptionFile(path), now_ms=10 * MIN)
    assert [(p.tag("journey"), p.field("close_reason")) for p in moved.start_points()] == [("search", "removed")]
    assert search.field("opened_ms") == moved.history[-1].opened_ms


def test_closes_of_the_last_minutes_are_announced_again_only_after_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    ev = new(path)
    feed(ev, "checkout", 0, [False, False])
    (close,) = feed(ev, "checkout", 2, [True, True, True])
    killed = new(path, now=5 * MIN)  # kill -9: the close may not have reached a sink's spool
    assert killed.start_points() == [close]
    assert new(path, now=20 * MIN).start_points() == []  # killed again, long after: nothing recent to repeat
    ev = new(path, now=21 * MIN)
    feed(ev, "checkout", 22, [False, False, True, True, True])
    ev.stop()
    assert new(path, now=28 * MIN).start_points() == []  # a clean stop flushed the sinks first


@pytest.mark.parametrize("content", [b"{not json", b"", b'{"version": 1, "clean": true, "open": [{"point": 3}], '
                                     b'"closed": []}', b"\xff\xfe", b"[]"])
def test_a_damaged_file_is_moved_aside_never_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      content: bytes) -> None:
    path = tmp_path / "disruptions" / "agent-ap.json"
    path.parent.mkdir()
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR):
        ev = new(path)
    assert ev.start_points() == [] and ev.open_disruptions() == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert "is damaged" in line and "moved aside to agent-ap.json.corrupt-" in line and "no disruption open" in line
    assert not path.exists() and len(list(path.parent.glob("agent-ap.json.corrupt-*"))) == 1
    feed(ev, "checkout", 0, [False, False])  # and the agent goes on, writing a fresh file
    assert len(json.loads(path.read_text())["open"]) == 1


def test_an_unreadable_file_is_never_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "d.json"
    path.mkdir()  # reading it fails (EISDIR): as a file nobody may read
    with caplog.at_level(logging.ERROR):
        ev = new(path)
    assert ev.open_disruptions() == [] and "cannot be read" in caplog.text
    assert len(list(tmp_path.glob("d.json.corrupt-*"))) == 1


def test_the_file_is_written_when_a_disruption_opens_or_closes_never_per_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    writes: list[int] = []
    real = DisruptionFile.save

    def counted(self: DisruptionFile, saved: object) -> bool:
        writes.append(1)
        return real(self, saved)  # type: ignore[arg-type]

    monkeypatch.setattr(DisruptionFile, "save", counted)
    ev = new(tmp_path / "d.json")
    feed(ev, "checkout", 0, [True] * 500)
    assert writes == []
    feed(ev, "checkout", 500, [False, False] + [False] * 500 + [True] * 3)
    assert len(writes) == 2  # the open, the close
    # A failed write is logged once, kept in memory, and written with the next change.
    (tmp_path / "d.json").unlink()
    (tmp_path / "d.json.tmp").mkdir()
    with caplog.at_level(logging.ERROR):
        feed(ev, "checkout", 2000, [False, False])
        feed(ev, "search", 2000, [False, False])
    assert caplog.text.count("cannot write the open disruptions") == 1
    (tmp_path / "d.json.tmp").rmdir()
    feed(ev, "checkout", 2002, [True] * 3)
    assert [e["point"]["tags"] for e in json.loads((tmp_path / "d.json").read_text())["open"]] == [
        [list(t) for t in ev.open_disruptions()[0].opened.tags]]  # type: ignore[union-attr]


AGENT = """\
version: 1
agent: {{state_dir: state, region: ap-south, name: agent-ap, listen: off{shard}}}
journeys:
  - name: checkout
    tags: {{stage: buy}}
{regions}    steps: [{{name: pay, http: {{url: "http://127.0.0.1:1/pay"}}}}]
  - name: search
    steps: [{{name: q, http: {{url: "http://127.0.0.1:1/q"}}}}]
"""


@pytest.mark.parametrize(("edit", "why"), [
    ({"shard": ""}, "nothing changed: stays open"),
    ({"rename": "checkout-v2"}, "renamed"),
    ({"regions": "    regions: [eu-west]\n"}, "moved to another region"),
    ({"shard": ", shard: 1/2"}, "moved to another shard"),
    ({"drop": True}, "removed"),
])
async def test_a_reload_that_takes_the_journey_away_closes_its_disruption(tmp_path: Path, edit: dict[str, object],
                                                                           why: str) -> None:
    """Through the agent's own reload (issue 23: the evaluator kept it open and ignored the journey)."""
    path = tmp_path / "journeys.yaml"
    path.write_text(AGENT.format(shard="", regions=""))
    agent = Agent(load_config(path, env={}), str(path))
    told: list[Point] = []
    agent.listeners.append(lambda _results, points: told.extend(points))
    checkout = agent.scheduler.journeys["checkout"]
    for i in range(2):
        agent.on_results([replace(run(checkout, (i + 1) * MIN, False, 10.0), agent="agent-ap")])
    assert [(p.tag("journey"), p.tag("state")) for p in told] == [("checkout", "open")]

    text = AGENT.format(shard=edit.get("shard", ""), regions=edit.get("regions", ""))
    if "rename" in edit:
        text = text.replace("name: checkout", f"name: {edit['rename']}")
    if edit.get("drop"):
        text = text.split("  - name: checkout")[0] + "  - name: search" + text.split("  - name: search")[1]
    assert shard_of("checkout", 2) == 2  # so `shard: 1/2` moves it away
    path.write_text(text)
    agent.reload()
    await agent.scheduler.stop(0)  # never started: only the reload's new loops to end
    assert agent.reload_error == ""
    if why.startswith("nothing"):
        assert len(told) == 1 and agent.evaluator.open_disruptions()
        return
    assert [(p.tag("journey"), p.tag("state"), p.field("close_reason")) for p in told[1:]] == [
        ("checkout", "close", "removed")], why
    assert dict(told[1].tags)["stage"] == "buy" and told[1].field("opened_ms") == told[0].time_ms
    assert agent.evaluator.open_disruptions() == []
    saved = json.loads(file_for(agent.config.agent.state_dir, "agent-ap").read_text())
    assert saved["open"] == []


@pytest.mark.parametrize("clean", [True, False])
def test_hidden_time_is_kept_by_a_clean_stop_and_the_time_down_never_counts(tmp_path: Path, clean: bool) -> None:
    """docs/deploy.md: an open disruption's hidden time is saved at a clean stop; after a kill -9 what was
    counted since the file's last write is lost; the time the agent was down is never counted as hidden."""
    uptime = sim_journey("uptime", JourneyKind.UPTIME)

    def evaluator(now: int) -> Evaluator:
        return Evaluator([CHECKOUT, uptime], "agent-ap", region="ap-south", store=DisruptionFile(tmp_path / "d.json"),
                         now_ms=now)

    ev = evaluator(0)
    ev.observe([run(uptime, 0, True, 10.0)])
    (opened,) = feed(ev, "checkout", 1, [False, False])  # open at minute 2, uptime green: hidden from here
    assert opened.field("uptime_ok") is True
    assert feed(ev, "checkout", 3, [False, False]) == []  # minutes 3 and 4: two hidden minutes
    if clean:
        ev.stop()
    again = evaluator(30 * MIN)  # down for 25 minutes
    assert again.start_points() == [opened]
    again.observe([run(uptime, 30 * MIN, True, 10.0)])
    (closed,) = feed(again, "checkout", 31, [True])  # the first good run after the start closes it
    assert closed.field("hidden_minutes") == (2.0 if clean else 0.0) + 1.0  # + minute 30 to 31, never the 25 down
