# The README's two commands: `make demo-run` (the main job) and `make test` (the whole suite).
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps demo-run test lint typecheck imports pytest fuzz bench clean

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The main job: the demo service, the agent on the sample journeys into SQLite, then the report.
demo-run: setup
	@bash scripts/demo-run.sh

lint: $(STAMP)
	$(BIN)/ruff check qos_agent probes exporters tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/pytest -q

test: setup lint typecheck imports pytest

# The config-language fuzz test at length: thousands of mutated files through `validate` (make test runs 300).
fuzz: setup
	QOS_FUZZ_EXAMPLES=$${QOS_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -q tests/test_fuzz.py

bench: setup
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .qos-agent .pytest_cache .mypy_cache .ruff_cache
