# `make run` and `make test` work on a fresh machine with only Python 3.11: they create .venv when
# missing, install the project into it (again whenever pyproject.toml changes), then act.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,peers]"
	@touch $(STAMP)

# The smoke benchmark; later the smoke suite. Prints the table and the path of its JSON result.
run: $(STAMP)
	$(BIN)/scalegym bench Rearrange-v0 --batch-sizes 1,256,4096 --steps 128 --repeats 3 \
		--out results/runs/smoke/$$(date +%Y%m%d-%H%M%S)/bench.json

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
