# Hangtár — SIPREC session recording server.
#   make run    create .venv, install, start the server on the embedded PostgreSQL
#   make test   install what the tests need (pip and Debian packages), run lint, types and the whole suite
#   make lint   ruff check + format check

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint typecheck check install install-test system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-packages

system-packages:
	bash tests/system-packages.sh

run: install
	$(BIN)/hangtar serve --demo $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# The suite runs on every core (pytest-xdist, one file per worker at a time), then the timing-sensitive load
# runs alone. Each part fails if it runs no test.
test: install-test lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider -n auto --dist loadfile -m "not serial" --durations=15
	$(BIN)/pytest -q -p no:cacheprovider -m serial

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
