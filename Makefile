# tnet-tf: `make demo` and `make test` are all a new user needs. Both create
# the virtual environment in .venv on first use and install the project into
# it; the install is redone only when setup.py or constraints.txt
# changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp lives inside .venv, so deleting .venv also forces a reinstall.
STAMP := $(VENV)/.tnet-tf-installed
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-x -k export"`.
PYTEST_ARGS ?=
# pytest-xdist workers for the default suite: much of a test's time is
# single-threaded Python (tracing, subprocess start-up), so two workers keep
# both cores of the CI machine busy (README gives the measured time).
PYTEST_WORKERS ?= 2

export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: help install lint format test test-fast test-slow test-all demo clean

help:
	@echo "make demo       the Megapixel-MNIST demo: TNet vs two CNNs (runs/demo)"
	@echo "make test       lint, then the default test suite (excludes tests marked slow)"
	@echo "make test-fast  lint, then the fast tier (excludes tests marked heavy or slow)"
	@echo "make lint       ruff: lint and format check (ruff.toml)"
	@echo "make format     ruff: sort imports and format the tree"
	@echo "make test-slow  only the tests marked slow"
	@echo "make test-all   every test"
	@echo "make install    create .venv and install tnet-tf[test] into it"
	@echo "make clean      remove caches and build outputs (keeps .venv)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# setup.py carries version ranges; constraints.txt the exact tested set.
$(STAMP): setup.py constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -e ".[test]" -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix --select I .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest -m "not slow" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The inner loop: the tests not marked heavy (end-to-end runs, subprocesses
# of the documented commands, learning and distributed runs; see
# tests/conftest.py).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow and not heavy" -n $(PYTEST_WORKERS) \
		$(PYTEST_ARGS)

# pytest exits with 5 when no test is selected.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The main job on the embedded data (experiments/demo.py, tnet_tf/demo/).
demo: $(STAMP)
	$(BIN)/python -m experiments.demo --workdir=runs/demo

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print \
		| xargs rm -rf
