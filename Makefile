# The two commands a newcomer needs:  make run   and   make test
# Both create .venv and install Clarion into it first (needs only Python 3.11+ and make).

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# The server and its Python client (clients/python, which the server depends on and which
# is installed from this checkout, not an index): a change to either's pyproject reinstalls.
PYPROJECTS := pyproject.toml clients/python/pyproject.toml
HASH    := $(shell cat $(PYPROJECTS) | sha1sum | cut -c1-12)
# Two stamps: the service alone (make run), and the service with the development tools
# (make test). The development install includes the service's, so it satisfies both.
RUN_STAMP := $(VENV)/.service-$(HASH)
STAMP     := $(VENV)/.installed-$(HASH)

.PHONY: install install-service run test lint typecheck pytest services browser bench bench-quick \
	bench-setup bench-readme wheel-check clean faults

$(VENV)/bin/python:
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Clarion needs Python 3.11 or newer")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): $(PYPROJECTS) | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e ./clients/python -e .
	rm -f $(VENV)/.service-* && touch $(RUN_STAMP)

$(STAMP): $(PYPROJECTS) | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e ./clients/python -e '.[dev]'
	rm -f $(VENV)/.installed-* $(VENV)/.service-* && touch $(STAMP) $(RUN_STAMP)

## Only what the service needs to run.
install-service: $(RUN_STAMP)

## The service and the development tools (tests, linters, type checker).
install: $(STAMP)

## Run the service on its embedded default: SQLite file ./clarion.db, no Redis.
run: install-service
	$(BIN)/clarion serve

## Lint, type-check and run the whole suite (SQLite, PostgreSQL, Redis, real processes).
test: install services browser lint typecheck pytest

lint: install
	$(BIN)/ruff check clarion clients docs/examples tests bench
	$(BIN)/ruff format --check clarion clients docs/examples tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

## Two worker processes by default (TEST_WORKERS=0 runs in this process): each has its own
## PostgreSQL database, SQLite files, ports and Redis key prefixes, so tests don't meet.
## Each worker takes whole test modules (--dist loadfile): a module's fixtures, such as
## the browser tests' Chromium, are closed before another module's tests run.
TEST_WORKERS ?= 2

pytest: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

## The whole fault suite (docs/reliability.md): processes SIGKILLed, databases stopped,
## every copy received classified; figures in build/faults/*.json, table by scripts/faults-table.
## make test runs only its quick part (pytest marker faults_quick).
faults: install services
	$(BIN)/pytest -q -m faults tests/faults tests/e2e/test_schemathesis.py
	$(BIN)/python scripts/faults-table

## Start the local PostgreSQL and Redis if they are installed but stopped.
services:
	@scripts/ensure-services

## Debian's Chromium for the browser tests (tests/browser), from apt when it is missing.
browser:
	@scripts/ensure-browser

## Benchmarks (bench/README.md): the peers go into their own bench/.venv-peers.
PEERS   := bench/.venv-peers
PSTAMP  := $(PEERS)/.installed-$(shell sha1sum bench/peers/requirements.txt | cut -c1-12)

$(PSTAMP): bench/peers/requirements.txt
	test -x $(PEERS)/bin/python || $(PY) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q -r bench/peers/requirements.txt
	rm -f $(PEERS)/.installed-* && touch $(PSTAMP)

# The node `ws` fan-out peer installs at the versions its package-lock.json pins (skipped,
# and reported "not measured" by the bench, where node is not installed).
bench-setup: install $(PSTAMP)
	$(BIN)/python -m pip install -q py-spy
	N=bench/peers/node_ws; if command -v npm >/dev/null && \
	  ! [ $$N/node_modules/.package-lock.json -nt $$N/package-lock.json ]; then \
	  (cd $$N && npm ci --no-audit --no-fund -s); fi

## Every scenario at full size (about 15 minutes), profiles the server while it runs; when
## every scenario finished, the README's performance table is rewritten from its summary.
bench: bench-setup services
	$(BIN)/python bench/run.py --profile
	$(BIN)/python bench/readme_table.py

## The README's performance table from bench/results/summary.md (between its markers).
bench-readme:
	$(BIN)/python bench/readme_table.py

## The same code paths with smaller N, in under 5 minutes.
bench-quick: bench-setup services
	$(BIN)/python bench/run.py --quick

## Build both wheels (server and client), install them into a fresh virtualenv and run
## `clarion serve` from it; the client's wheel alone into another, which calls that server.
wheel-check:
	PY=$(PY) scripts/wheel-check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
