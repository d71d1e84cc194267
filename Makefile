# DFIP — the two commands: `make run` (the platform locally) and `make test` (everything CI runs).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint types unit integration e2e fmt clean kafka-up kafka-down bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,rocksdb]'
	touch $(STAMP)

install: $(STAMP)

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
	rm -rf .dfip .pytest_cache .mypy_cache .ruff_cache
