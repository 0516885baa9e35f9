# The two commands of the README. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo replay test lint bench

demo: $(STAMP)  ## the main job: embedded broker + worker + producer of the bundled cascade
	$(BIN)/adl-monitor demo

replay: $(STAMP)  ## the engine offline over the bundled cascade, outputs in replay-out/
	$(BIN)/adl-monitor replay --out replay-out

test: $(STAMP) lint  ## lint + types + all tests
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check streams tests benchmarks tools
	$(BIN)/ruff format --check streams tests benchmarks tools
	$(BIN)/mypy

bench: $(STAMP)  ## engine figures, each beside its baseline (prints figures, asserts nothing)
	$(BIN)/python benchmarks/bench_mark_tick.py --sizes 10000 100000
	$(BIN)/python benchmarks/bench_rank.py --sizes 10000 100000 1000000
	$(BIN)/python benchmarks/bench_replay.py --accounts 10000
	$(BIN)/python benchmarks/bench_block.py
	$(BIN)/python benchmarks/bench_symbols.py

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "adl-monitor needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)
