"""A fuzzed config language (issue 11): mutated sample and docs files through the real `validate` CLI.

Property, for every case: exit 0, or exit 2 with every problem line located `FILE:LINE:COL: ...`
(one line each, bounded) and a count line; never a traceback; under 2 s of CPU; the process's
peak memory never 256 MB above where the test started. In-process via typer's CliRunner for
speed (seeded, QOS_FUZZ_EXAMPLES cases, 300 by default; `make fuzz` runs thousands), plus the
bomb-class files in real subprocesses under RLIMIT_AS 256 MB. tests/corpus/fuzz/ keeps the
generated failures that were fixed; every file there is replayed.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from qos_agent.cli import app
from tests.fuzz_mutations import BOMB, METADATA_KEYS, hostile_files, seeds

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "tests" / "corpus" / "fuzz").glob("*.yaml"))
EXAMPLES = int(os.environ.get("QOS_FUZZ_EXAMPLES", "300"))
CPU_LIMIT_S = 2.0
MEMORY_LIMIT_MB = 256
LINE_LIMIT = 600  # a problem line: the path plus a message of at most ~500 characters
SEEDS = seeds()
ENV = {"QOS_FUZZ_SET": "value-from-env"}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def assert_validate_behaves(path: Path, stdout: str, stderr: str, code: int, exception: BaseException | None,
                            ) -> None:
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert code in (0, 2), (code, stdout[-2000:], stderr[-2000:])
    assert "Traceback" not in stdout + stderr
    if code == 0:
        assert stdout.startswith(f"{path}: valid ("), stdout
        return
    lines = stderr.splitlines()
    assert lines and re.fullmatch(r"\d+ problems? found", lines[-1]), stderr[-2000:]
    assert int(lines[-1].split()[0]) == len(lines) - 1, stderr[-2000:]
    for line in lines[:-1]:
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: \S", line), line[:300]
        assert len(line) <= LINE_LIMIT and line.isprintable(), line[:300]
        assert "Node(" not in line and "<unicode string>" not in line, line


def validate_in_process(path: Path) -> tuple[float, int]:
    t0 = time.thread_time()
    result = CliRunner(env=ENV).invoke(app, ["validate", str(path)])
    cpu = time.thread_time() - t0
    assert_validate_behaves(path, result.stdout, result.stderr, result.exit_code, result.exception)
    return cpu, result.exit_code


@pytest.fixture(scope="module")
def start_mb() -> float:
    return _peak_mb()


def test_seeds_are_many_and_the_sample_is_valid(tmp_path: Path) -> None:
    assert len(SEEDS) >= 5
    path = tmp_path / "journeys.yaml"
    path.write_text(SEEDS[0])
    shutil.copytree(ROOT / "steps", tmp_path / "steps")  # the sample's script step, beside it
    assert validate_in_process(path)[1] == 0


def test_seeds_carry_the_scorecards_journey_keys() -> None:
    """owner, customer_reason and weight are in the seeds (the sample), so mutations reach them too."""
    for key in METADATA_KEYS:
        assert any(re.search(rf"^\s+{key}: ", seed, re.M) for seed in SEEDS), key


def test_fuzzed_files_exit_0_or_2_located(tmp_path_factory: pytest.TempPathFactory, start_mb: float) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "journeys.yaml"
    codes: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(hostile_files(SEEDS))
    def case(data: bytes) -> None:
        path.write_bytes(data)
        cpu, code = validate_in_process(path)
        codes[code] = codes.get(code, 0) + 1
        assert cpu < CPU_LIMIT_S, f"{cpu:.2f}s of CPU"
        assert _peak_mb() - start_mb < MEMORY_LIMIT_MB, f"peak RSS {_peak_mb():.0f} MB"

    case()
    assert codes.get(2, 0) > EXAMPLES // 4, codes  # the mutations do break files...
    assert sum(codes.values()) >= EXAMPLES // 2, codes  # ...and most cases ran


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("case", CORPUS, ids=lambda p: p.stem)
def test_fuzz_corpus_replays(case: Path, tmp_path: Path) -> None:
    """Each kept failure now exits 2 with located problems; `# expect:` lines say what must be among them."""
    data = case.read_bytes()
    path = tmp_path / case.name
    path.write_bytes(data)
    result = CliRunner(env=ENV).invoke(app, ["validate", str(path)])
    assert_validate_behaves(path, result.stdout, result.stderr, result.exit_code, result.exception)
    assert result.exit_code == 2, result.stdout
    for want in re.findall(rb"^# expect: (.*)$", data, re.M):
        text = want.decode()
        wanted = f"{path}:{text}" if re.match(r"^\d+:\d+: ", text) else text
        assert wanted in result.stderr, (wanted, result.stderr[-2000:])


# -- the bomb class, in real processes with real limits ---------------------------------------------------------

BOMB_CLASS = {  # all in-process; SUBPROCESS ones also in real processes under limits
    "alias-bomb": ("version: 1\n" + BOMB + "journeys: []\n").encode(),
    "deep-100000": b"version: 1\nvariables: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "deep-maps": b"version: 1\nvariables: " + b"{a: " * 50_000 + b"1" + b"}" * 50_000 + b"\n",
    "recursive-alias": b"version: 1\nvariables: &r [*r]\njourneys: []\n",
    "six-mb": b"version: 1\njourneys: []\n#" + b"x" * (6 * 2**20) + b"\n",
    "many-values": b"version: 1\nvariables: [" + b"1," * 400_000 + b"1]\n",
    "huge-string": b"version: 1\nvariables: {a: '" + b"x" * (4 * 2**20) + b"'}\njourneys: []\n",
    "binary": bytes(range(256)) * 64,
}
SUBPROCESS = ("alias-bomb", "deep-100000", "six-mb", "many-values", "huge-string")


@pytest.mark.parametrize("name", sorted(BOMB_CLASS))
def test_bomb_class_in_process(name: str, tmp_path: Path, start_mb: float) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(BOMB_CLASS[name])
    cpu, code = validate_in_process(path)
    assert code == 2 and cpu < CPU_LIMIT_S, (code, cpu)
    assert _peak_mb() - start_mb < MEMORY_LIMIT_MB, f"peak RSS {_peak_mb():.0f} MB"


def _limits() -> None:
    mem = MEMORY_LIMIT_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (30, 31))


def _validate_subprocess(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "qos_agent", "validate", str(path)], capture_output=True,
                          text=True, timeout=120, preexec_fn=_limits, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def test_bomb_class_in_real_processes_under_256mb(tmp_path: Path) -> None:
    baseline_path = tmp_path / "journeys.yaml"
    baseline_path.write_text(SEEDS[0])
    shutil.copytree(ROOT / "steps", tmp_path / "steps")  # the sample's script step, beside it
    proc, baseline_cpu = _validate_subprocess(baseline_path)
    assert proc.returncode == 0, proc.stderr
    for name in SUBPROCESS:
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(BOMB_CLASS[name])
        proc, cpu = _validate_subprocess(path)
        assert_validate_behaves(path, proc.stdout, proc.stderr, proc.returncode, None)
        assert proc.returncode == 2, (name, proc.stdout)
        # Start-up (interpreter, imports) is the baseline's; the file itself gets 2 s of CPU.
        assert cpu - baseline_cpu < CPU_LIMIT_S, f"{name}: {cpu - baseline_cpu:.2f}s of CPU over a valid file"
