# DFIP — the two commands: `make run` (the platform locally) and `make test` (everything CI runs).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the hot modules mypyc compiles (pyproject.toml [tool.dfip.native]); rebuilt when one changes
NATIVE_SRC := $(shell sed -n '/^\[tool.dfip.native\]/,/^]/s/^ *"\(.*\.py\)",*$$/\1/p' pyproject.toml)
NATIVE := streams/native.json
DFIP_COMPILE ?= 1

.PHONY: run test install lint types unit integration e2e fmt clean kafka-up kafka-down bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools>=77'
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,rocksdb]'
	touch $(STAMP)

# mypyc (a dev dependency) and the C compiler: C extensions next to the sources, recorded in
# $(NATIVE); with DFIP_COMPILE=0 or no compiler, removed and the same sources run as Python.
# The target is remade when a source is newer or DFIP_COMPILE changed since the last build.
$(NATIVE): $(STAMP) $(NATIVE_SRC) dfip/native.py $(VENV)/.compile-$(DFIP_COMPILE)
	DFIP_COMPILE=$(DFIP_COMPILE) $(BIN)/python -m dfip.native build

$(VENV)/.compile-$(DFIP_COMPILE): | $(STAMP)
	rm -f $(VENV)/.compile-*
	touch $@

install: $(STAMP) $(NATIVE)

# Debian's prometheus (ships promtool) for the end-to-end tests; installed when missing as root.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q prometheus >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null; }) \
	    && systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	  else echo "prometheus missing (not root, so not installed): the end-to-end tests that need it are skipped; apt-get install prometheus to run them"; fi; }

run: install
	$(BIN)/dfip run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

types: install
	$(BIN)/mypy core dfip schemas streams adapters

test: install prometheus
	bash deploy/kafka/kafka.sh fetch
	$(MAKE) lint types
	$(BIN)/pytest -q --durations=20 tests

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

kafka-up:
	bash deploy/kafka/kafka.sh up

kafka-down:
	bash deploy/kafka/kafka.sh down

clean:
	rm -rf .dfip .pytest_cache .mypy_cache .ruff_cache build
	find streams schemas core -name '*.so' -delete
	rm -f $(NATIVE)
