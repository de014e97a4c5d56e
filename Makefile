# `make run` and `make test` set up everything they need on a fresh machine: a virtual environment,
# the npm tooling for templates and BPMN, Chromium for the properties panel test (apt, as root), and
# (through worker/broker.py) a Zeebe distribution and a Java 21+ when no ZEEBE_ADDRESS is given. Caches
# live outside git (~/.cache/hf-connector).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Parallel pytest processes: end-to-end cases wait on I/O, so more than the 2 cores pays off.
TEST_WORKERS ?= 4
PYTEST_ARGS ?=

.PHONY: help install tooling chromium run test lint unit e2e template bench clean

help:
	@echo "make run    - run the worker (starts a local Zeebe when ZEEBE_ADDRESS is unset)"
	@echo "make test   - install everything and run every test (end-to-end included)"
	@echo "make bench  - benchmark against a real broker and a loopback Hugging Face stand-in"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,devkit]'
	touch $@

install: $(VENV)/.installed

tooling/node_modules/.installed: tooling/package.json tooling/package-lock.json
	npm ci --prefix tooling --no-audit --no-fund --loglevel=error
	touch $@

tooling: tooling/node_modules/.installed

# tests/ui renders the element template in Modeler's properties panel with Debian's Chromium.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "make test needs Chromium for tests/ui: sudo apt-get install chromium" >&2; exit 1; \
	  fi; \
	fi

run: install
	$(BIN)/hf-connector dev

lint: install
	$(BIN)/ruff check worker devkit tests bench
	$(BIN)/ruff format --check worker devkit tests bench
	$(BIN)/mypy

# Fetch the broker distribution and a Java before the tests, so a missing piece fails with its own message.
broker-prerequisites: install
	@if [ -z "$$ZEEBE_ADDRESS" ]; then $(BIN)/python -m worker.broker --prepare; fi

test: install tooling chromium lint broker-prerequisites
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: install tooling
	$(BIN)/python -m pytest --no-zeebe-broker -n $(TEST_WORKERS) tests/unit $(PYTEST_ARGS)

e2e: install broker-prerequisites
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile tests/e2e $(PYTEST_ARGS)

template: install
	$(BIN)/hf-connector template element-templates

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tooling/node_modules .pytest_cache .mypy_cache .ruff_cache
