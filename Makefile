# `make run` and `make test` work on a fresh machine with only Python 3.11: they create .venv when
# missing, install the project into it (again whenever pyproject.toml or this file changes), then act.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=15

.PHONY: run test test-all docs lint format clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,peers,ray,search,docs]"
	@touch $(STAMP)

# The smoke suite: a benchmark and a short PPO run; prints the run directory and the tb command.
run: $(STAMP)
	$(BIN)/scalegym run smoke

test: $(STAMP)
	$(PYTEST)

# Also the learning tests marked slow (CNN, GRU, host-path and gymnax CartPole): about 3 more
# minutes of CPU on 2 cores.
test-all: $(STAMP)
	$(PYTEST) --slow

# The docs site (MkDocs + Material + mkdocstrings) into site/; strict: a broken link or reference fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
