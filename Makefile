# Two entry points for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= var/demo
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	@# Byte-compile once: with PYTHONDONTWRITEBYTECODE set, every start would compile the sources.
	@$(BIN)/python -m compileall -q core tui >/dev/null
	$(BIN)/docbridge --data-dir $(DATA_DIR) init --demo
	$(BIN)/docbridge --data-dir $(DATA_DIR)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff format --check core tui tests bench
	$(BIN)/ruff check core tui tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	@$(BIN)/python -m compileall -q core tui bench >/dev/null
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
