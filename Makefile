# Partner Ledger: two commands on a fresh machine.
#   make run   - embedded PostgreSQL + Kafka-protocol broker + the four services
#   make test  - ruff, mypy --strict, import contracts, pytest (unit, integration, e2e)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint typecheck contracts schemas unit integration e2e clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/partnerledger up

test: $(STAMP) lint typecheck contracts
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check services shared partnerledger tests bench
	$(BIN)/ruff format --check services shared partnerledger tests bench

typecheck: $(STAMP)
	$(BIN)/mypy services shared partnerledger

contracts: $(STAMP)
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench.slice

schemas: $(STAMP)
	$(BIN)/partnerledger schemas

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
