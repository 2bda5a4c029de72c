# The two commands a newcomer needs:  make run   and   make test
# Both create .venv and install Clarion into it first (needs only Python 3.11+ and make).

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run test lint typecheck pytest services bench bench-quick bench-setup clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Clarion needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Run the service on its embedded default: SQLite file ./clarion.db, no Redis.
run: install
	$(BIN)/clarion serve

## Lint, type-check and run the whole suite (SQLite, PostgreSQL, Redis, real processes).
test: install services lint typecheck pytest

lint: install
	$(BIN)/ruff check clarion tests bench
	$(BIN)/ruff format --check clarion tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

## Start the local PostgreSQL and Redis if they are installed but stopped.
services:
	@scripts/ensure-services

## Benchmarks (bench/README.md): the peers go into their own bench/.venv-peers.
PEERS   := bench/.venv-peers
PSTAMP  := $(PEERS)/.installed-$(shell sha1sum bench/peers/requirements.txt | cut -c1-12)

$(PSTAMP): bench/peers/requirements.txt
	test -x $(PEERS)/bin/python || $(PY) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q -r bench/peers/requirements.txt
	rm -f $(PEERS)/.installed-* && touch $(PSTAMP)

bench-setup: install $(PSTAMP)
	$(BIN)/python -m pip install -q py-spy

## Every scenario at full size (about 15 minutes), profiles the server while it runs.
bench: bench-setup services
	$(BIN)/python bench/run.py --profile

## The same code paths with smaller N, in under 5 minutes.
bench-quick: bench-setup services
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
