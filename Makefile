# The README's two commands: `make demo-run` (the main job) and `make test` (the whole suite).
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Arize Phoenix: the real OTLP receiver the tracing tests send spans to. Large, so in a virtualenv of
# its own (its dependencies never meet the agent's); pinned, so CI installs what was tested.
PHOENIX_VENV    ?= .venv-phoenix
PHOENIX_VERSION := 20.26.1
PHOENIX_STAMP   := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)

.PHONY: setup system-deps demo-run test lint typecheck imports pytest fuzz soak bench image image-test clean

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(PHOENIX_STAMP):
	@test -x $(PHOENIX_VENV)/bin/python || python3 -m venv $(PHOENIX_VENV)
	@$(PHOENIX_VENV)/bin/pip install -q --disable-pip-version-check 'arize-phoenix==$(PHOENIX_VERSION)'
	@touch $(PHOENIX_STAMP)

# The main job: the demo service, the agent on the sample journeys into SQLite, then the report.
demo-run: setup
	@bash scripts/demo-run.sh

lint: $(STAMP)
	$(BIN)/ruff check qos_agent probes exporters tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: setup $(PHOENIX_STAMP)
	$(BIN)/pytest -q

test: setup lint typecheck imports pytest

# The config-language fuzz test at length: thousands of mutated files through `validate` (make test runs 300).
fuzz: setup
	QOS_FUZZ_EXAMPLES=$${QOS_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -q tests/test_fuzz.py

# The agent's life at length, in a real process (tests/test_lifecycle_process.py; make test plays one short
# life): every seed that ever failed and QOS_LIFE_RUNS fresh ones, QOS_LIFE_EVENTS events each, seeds printed.
soak: setup
	QOS_LIFE_SOAK=1 QOS_LIFE_EVENTS=$${QOS_LIFE_EVENTS:-60} QOS_LIFE_RUNS=$${QOS_LIFE_RUNS:-3} \
	  $(BIN)/pytest -q -s tests/test_lifecycle_process.py

bench: setup
	$(PY) -m bench.run_all

# The image, built with Debian's buildah (no Docker engine; vfs storage, chroot isolation). BASE=... picks
# its base; by default python:3.11-slim-bookworm, or where that cannot be pulled a bookworm base made
# from Debian's archive, cached in QOS_IMAGE_CACHE (scripts/image-build.sh).
IMAGE           ?= localhost/qos-agent:latest
BASE            ?=
STORAGE_DRIVER  ?= vfs
QOS_IMAGE_CACHE ?= /var/cache/qos-agent
image:
	@bash scripts/install-system-deps.sh buildah debootstrap
	@IMAGE="$(IMAGE)" BASE="$(BASE)" STORAGE_DRIVER="$(STORAGE_DRIVER)" QOS_IMAGE_CACHE="$(QOS_IMAGE_CACHE)" \
	  bash scripts/image-build.sh

# Runs the built image (tests/image/): uid 10001, tini as PID 1, `check` with its Chromium, `run`, SIGHUP, SIGTERM.
image-test: setup
	QOS_IMAGE="$(IMAGE)" STORAGE_DRIVER="$(STORAGE_DRIVER)" $(BIN)/pytest -q tests/image

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) .qos-agent .pytest_cache .mypy_cache .ruff_cache
