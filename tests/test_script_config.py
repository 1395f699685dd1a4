"""`script` steps at load (issue 25): both forms, `sets` as variables for later steps, and every mistake
a located problem in journeys.yaml; the user's module is imported in a bounded child process only, so a
module that hangs, bloats, exits or prints never hangs or breaks `validate`; `run --watch` watches the
script files too."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from probes.script import vet
from probes.script.config import ScriptSpec
from qos_agent.config.loader import load_config
from qos_agent.errors import ConfigError
from qos_agent.ops.watch import watch_file
from tests.support.cli import qos

GOOD = """\
import os

async def pay(ctx):
    ctx.vars["order_id"] = "o-1"

async def pay_later(ctx):
    pass

def plain(ctx):
    pass

async def two(ctx, other):
    pass
"""


def write(tmp: Path, steps: str, scripts: dict[str, str] | None = None) -> Path:
    for name, text in (scripts or {"pay.py": GOOD}).items():
        (tmp / "steps").mkdir(exist_ok=True)
        (tmp / "steps" / name).write_text(text)
    path = tmp / "journeys.yaml"
    path.write_text("version: 1\nvariables: {base: 'http://127.0.0.1:1'}\njourneys:\n  - name: j\n    steps:\n"
                    + steps)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    return [str(p) for p in err.value.problems]


def test_both_forms_and_sets_as_later_variables(tmp_path: Path) -> None:
    path = write(tmp_path, """\
      - name: pay
        script: {path: steps/pay.py, function: pay, sets: [order_id]}
        mask: ["#card"]
      - name: short
        timeout: 3s
        script: "steps/pay.py:pay_later"
      - name: receipt
        http: {url: "{{ base }}/orders/{{ order_id }}"}
""")
    config = load_config(path, env={})
    pay, short, _ = config.journeys[0].steps
    spec: ScriptSpec = pay.spec
    assert (spec.path, spec.function, spec.sets, spec.mask, spec.trace) == (
        "steps/pay.py", "pay", ("order_id",), ("#card",), "on-retry")
    assert spec.file == str(tmp_path / "steps" / "pay.py") and spec.source == GOOD.encode() and len(spec.digest) == 64
    assert (short.spec.function, short.timeout_s, pay.heavy, pay.kind) == ("pay_later", 3.0, True, "script")
    assert config.files == (str(tmp_path / "steps" / "pay.py"),)  # `run --watch` watches it
    assert vet.module_name(spec.file, spec.digest) not in sys.modules  # imported in a child only


def test_a_changed_script_is_a_changed_journey(tmp_path: Path) -> None:
    path = write(tmp_path, '      - {name: pay, script: "steps/pay.py:pay"}\n')
    before = load_config(path, env={}).journeys[0]
    assert load_config(path, env={}).journeys[0] == before
    (tmp_path / "steps" / "pay.py").write_text(GOOD + "\n# changed\n")
    assert load_config(path, env={}).journeys[0] != before


def test_every_mistake_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, """\
      - name: a
        script: "steps/pay.py:plain"
      - name: b
        script: "steps/pay.py:two"
      - name: c
        script: "steps/pay.py:pya"
      - name: d
        script: "steps/none.py:pay"
      - name: e
        script: {path: steps/pay.py, function: pay, sets: ["not a name", order_id, order_id]}
      - name: f
        script: "steps/pay.py"
      - name: g
        script: {path: steps/broken.py, function: pay}
      - name: h
        script: {path: steps/pay.py, function: pay, shell: true}
        extract: {x: {json: "$.x"}}
      - name: i
        http: {url: "{{ base }}/{{ later }}"}
      - name: k
        script: {path: steps/pay.py, function: pay, sets: [later]}
""", {"pay.py": GOOD, "broken.py": "import os\n\nasync def pay(ctx):\n    pass\n\nraise RuntimeError('no config')\n"})
    found = problems(path)
    f = str(path)
    assert found == [
        f"{f}:7:17: 'plain' in steps/pay.py is not an async function (write async def plain(ctx): ...)",
        f"{f}:9:17: 'two' in steps/pay.py must take one argument, the script context (write async def two(ctx): ...)",
        f"{f}:11:17: steps/pay.py has no function 'pya' (did you mean 'pay'?)",
        f"{f}:13:17: script file 'steps/none.py' not found (looked for {tmp_path}/steps/none.py) "
        "(write the path relative to journeys.yaml)",
        f"{f}:15:59: 'sets' names 'not a name', not a variable name (write names such as order_id "
        "(letters, digits, '_', '.', '-'))",
        f"{f}:15:59: 'sets' names 'order_id' twice (list each name once)",
        f"{f}:17:17: 'script' is 'steps/pay.py', not FILE.py:FUNCTION (write script: \"steps/pay.py:pay\" or "
        "script: {path: steps/pay.py, function: pay})",
        f"{f}:19:24: script steps/broken.py cannot be imported: RuntimeError: no config (steps/broken.py:6) "
        "(fix the script: the agent imports it when it starts, see docs/scripts.md)",
        f"{f}:21:53: unknown key 'shell' in script (valid: function, path, sets, trace)",
        f"{f}:22:18: script steps yield nothing to extract from (remove 'extract:' (the kinds that yield values "
        "are listed in docs/journeys.md))",
        f"{f}:24:21: '{{{{ later }}}}' is extracted only by step 'k', which runs later (reorder the steps)",
    ]


@pytest.mark.slow
def test_a_module_that_hangs_bloats_exits_or_prints_costs_a_child_not_validate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vet, "VET_TIMEOUT_S", 3.0)
    scripts = {
        "sleeps.py": "import time\ntime.sleep(3600)\n",
        "spins.py": "while True:\n    pass\n",
        "bloats.py": "hoard = bytearray(3 * 1024**3)\n",
        "exits.py": "import sys\nsys.exit(0)\n",
        "kills.py": "import os\nos._exit(3)\n",
        "prints.py": "import sys, threading\nprint('{\"functions\": {}}')\nsys.stderr.write('noise')\n"
                     "threading.Thread(target=lambda: __import__('time').sleep(3600)).start()\n"
                     "async def pay(ctx):\n    pass\n",
    }
    path = write(tmp_path, "".join(f'      - {{name: s{i}, script: "steps/{name}:pay"}}\n'
                                   for i, name in enumerate(scripts)), scripts)
    t0 = time.monotonic()
    found = problems(path)
    took = time.monotonic() - t0
    assert [p.split(": ", 1)[1] for p in found] == [
        "script steps/sleeps.py cannot be imported: importing it took more than 3s "
        "(fix the script: the agent imports it when it starts, see docs/scripts.md)",
        "script steps/spins.py cannot be imported: importing it took more than 3s "
        "(fix the script: the agent imports it when it starts, see docs/scripts.md)",
        "script steps/bloats.py cannot be imported: importing it needs more than 1024 MB "
        "(fix the script: the agent imports it when it starts, see docs/scripts.md)",
        "script steps/exits.py cannot be imported: SystemExit: 0 (steps/exits.py:2) "
        "(fix the script: the agent imports it when it starts, see docs/scripts.md)",
        "script steps/kills.py cannot be imported: the process importing it ended with status 3 (over 1024 MB or "
        "5s of CPU, or os._exit at import?) (fix the script: the agent imports it when it starts, see docs/scripts.md)",
    ]  # prints.py printed, wrote and left a thread behind: valid all the same
    assert took < 20, took


def test_validate_names_the_place_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '      - {name: pay, script: "steps/pay.py:nope"}\n',
                 {"pay.py": "async def pay(ctx):\n    pass\n"})
    r = qos("validate", str(path), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert f"{path}:6:29: steps/pay.py has no function 'nope' (valid: pay)" in r.stderr


async def test_watch_reloads_when_a_script_changes_not_when_touched_or_newly_listed(tmp_path: Path) -> None:
    config, script, added = tmp_path / "journeys.yaml", tmp_path / "pay.py", tmp_path / "new.py"
    for f in (config, script, added):
        f.write_text("a")
    files = [str(script)]
    calls: list[float] = []
    task = asyncio.create_task(watch_file(config, lambda: vet.hashlib.sha256(b"a").hexdigest(),
                                          lambda: calls.append(time.monotonic()), poll_s=0.05,
                                          others=lambda: files))
    try:
        await asyncio.sleep(0.2)
        script.touch()
        files.append(str(added))  # a reload listed a new script: it is what runs, no change
        await asyncio.sleep(0.3)
        assert calls == []
        script.write_text("b")
        await asyncio.sleep(0.3)
        assert len(calls) == 1
        added.write_text("c")
        await asyncio.sleep(0.3)
        assert len(calls) == 2
    finally:
        task.cancel()
