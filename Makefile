# Needs only python3 (with its venv module), pip and make. Every target that runs code
# first makes sure .venv exists and holds the tested set from constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint bench clean distclean

help:
	@echo "make venv   - create $(VENV) and install jrl[dev] with the pins in constraints.txt"
	@echo "make demo   - run experiments/cat_room.py, writing to results/cat_room"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff check and ruff format --check"
	@echo "make bench  - run the benchmarks in experiments/benchmarks/ (BENCHMARKS) in turn"
	@echo "make clean  - remove caches and build metadata (distclean also removes $(VENV))"

venv: $(STAMP)

# Reinstalls only when pyproject.toml or constraints.txt is newer than the stamp.
$(STAMP): pyproject.toml constraints.txt
	@# A .venv of a Python older than jrl needs (made before) is made again.
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
			echo "jrl needs Python >= 3.11; $(PYTHON) is $$($(PYTHON) --version 2>&1)" \
				"(make PYTHON=python3.11 ...)"; exit 1; }; \
		rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python experiments/cat_room.py --out results/cat_room

# One worker per core this process may use (at most 4; xdist's own count ignores
# affinity, as under taskset or Slurm; macOS has no affinity, so there the machine's
# cores), each taking whole test files, so that a module's shared compiled runs are
# built once.
WORKERS = $(shell $(BIN)/python -c 'import os; print(min(4, len(os.sched_getaffinity(0)) \
	if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))')

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The speed claims; the other scripts there are baselines and helpers they import, and profiling tools.
BENCHMARKS = grid_throughput tabular_cliff ppo_cartpole dqn_cartpole chunk_overhead product_floor

bench: $(STAMP)
	@set -e; for name in $(BENCHMARKS); do \
		echo "== experiments/benchmarks/$$name.py"; \
		$(BIN)/python "experiments/benchmarks/$$name.py"; \
	done

clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info

distclean: clean
	rm -rf $(VENV)
