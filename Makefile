# `make run` and `make test` set up everything they need on a fresh machine: a virtual environment, the
# npm tooling for templates, BPMN, zbctl and the properties panel, and Chromium for the panel test (apt, as
# root). No Java, Maven or Docker: when ZEEBE_ADDRESS is unset, the project's development engine
# (devkit/engine) runs the processes. ENGINE=camunda runs Camunda's own image in Docker instead (only on
# request); ZEEBE_ADDRESS (plus the OAuth settings) points at any Camunda 8.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Parallel pytest processes: end-to-end cases wait on I/O, so more than the 2 cores pays off.
TEST_WORKERS ?= 4
PYTEST_ARGS ?=

.PHONY: help install tooling chromium run example incidents demo test lint unit e2e template bench clean

help:
	@echo "make run                   - engine (unless ZEEBE_ADDRESS is set), examples deployed, worker running"
	@echo "make example NAME=chat     - start an example process and print its result (VARS='{...}' adds variables)"
	@echo "make incidents [RETRY=1]   - list open incidents (and retry them once the cause is fixed)"
	@echo "make demo                  - every example against the bundled Hugging Face stand-in: no token needed"
	@echo "make test                  - install everything and run every test (end-to-end included)"
	@echo "make bench                 - benchmark against the engine and a loopback Hugging Face stand-in"

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
	$(BIN)/python -m devkit.run

# NAME, VARS and RETRY reach the example runner through the environment (make exports command-line
# variables), so JSON in VARS needs no further quoting.
example: install
	$(BIN)/python -m devkit.examples run $(NAME)

incidents: install
	$(BIN)/python -m devkit.examples incidents

demo: install
	$(BIN)/python -m devkit.demo

lint: install
	$(BIN)/ruff check hf_connector devkit tests bench
	$(BIN)/ruff format --check hf_connector devkit tests bench
	$(BIN)/mypy

test: install tooling chromium lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: install tooling
	$(BIN)/python -m pytest --no-engine -n $(TEST_WORKERS) tests/unit $(PYTEST_ARGS)

e2e: install tooling
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile tests/e2e $(PYTEST_ARGS)

template: install
	$(BIN)/hf-connector template element-templates

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tooling/node_modules .pytest_cache .mypy_cache .ruff_cache
