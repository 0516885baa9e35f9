# The two commands of the README. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo replay replay-compiled compiled test lint bench lock

demo: $(STAMP)  ## the main job: embedded broker + worker + producer of the bundled cascade
	$(BIN)/adl-monitor demo

replay: $(STAMP)  ## the engine offline over the bundled cascade, outputs in replay-out/
	$(BIN)/adl-monitor replay --out replay-out

compiled: build/compiled/COMPILED_FROM  ## the engine compiled by mypyc into build/compiled (gcc)

build/compiled/COMPILED_FROM: $(STAMP) $(shell find streams -name '*.py')
	$(BIN)/python tools/compile_engine.py --out build/compiled

replay-compiled: compiled  ## replay, with the compiled engine: the same bytes, faster
	PYTHONPATH=build/compiled $(BIN)/adl-monitor replay --out replay-out

test: $(STAMP) lint  ## lint + types + all tests (Java, Maven, Prometheus, Chromium from Debian if missing)
	tools/system-deps.sh
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check streams tests benchmarks tools
	$(BIN)/ruff format --check streams tests benchmarks tools
	$(BIN)/mypy

bench: $(STAMP) compiled  ## engine figures, each beside its baseline (prints figures, asserts nothing)
	$(BIN)/python benchmarks/bench_mark_tick.py --sizes 10000 100000
	$(BIN)/python benchmarks/bench_rank.py --sizes 10000 100000 1000000
	$(BIN)/python benchmarks/bench_indexes.py --sizes 10000 100000
	$(BIN)/python benchmarks/bench_replay.py --accounts 10000 --compiled build/compiled
	$(BIN)/python benchmarks/bench_compiled.py --compiled build/compiled bench_block.py
	$(BIN)/python benchmarks/bench_symbols.py
	$(BIN)/python benchmarks/bench_shards.py
	$(BIN)/python benchmarks/bench_rebalance.py
	$(BIN)/python benchmarks/bench_snapshot.py --accounts 20000

# installs exactly the locked versions, each checked against its hash; then the project
$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "adl-monitor needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lock:  ## re-pin requirements*.lock from pyproject.toml's ranges (needs pip-tools)
	pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml
	pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --extra dev \
	  -o requirements-dev.lock pyproject.toml
