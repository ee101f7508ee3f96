# The README's two commands: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
RUN ?= runs/demo

.PHONY: demo check-demo test lint setup setup-dev bench clean distclean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PIP) -e '.[bench]'
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# A second `make demo` replaces the previous demo run (and says so); RUN=runs/other keeps both.
# The digits default fixes train.threads=1, so the figures are the README's on any machine.
demo: setup
	@if [ -d $(RUN) ]; then echo "make demo: replacing the previous demo run $(RUN)"; rm -rf $(RUN); fi
	$(BIN)/metriclab train --run-dir $(RUN)
	$(BIN)/metriclab eval $(RUN)

# Reruns the demo in a temporary folder and compares it with the README's table (exit 1 if not).
check-demo: setup
	$(BIN)/python scripts/check_demo.py

test: setup-dev
	$(BIN)/python -m pytest

lint: setup-dev
	$(BIN)/ruff check metriclab tests scripts
	$(BIN)/ruff format --check metriclab tests scripts

# Every scripts/bench_*.py against its peer (easyfsl, PML, scikit-learn); rewrites BENCHMARKS.md.
# BENCH_ARGS=--quick for a few minutes, BENCH_ARGS="--only eval" for one benchmark.
bench: setup-dev $(VENV)/.installed-bench
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bench.py $(BENCH_ARGS)

# `clean` removes what runs made (run folders, caches); `distclean` also removes the virtualenv.
clean:
	rm -rf runs .pytest_cache

distclean: clean
	rm -rf $(VENV)
