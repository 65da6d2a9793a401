# Partner Ledger: two commands on a fresh machine.
#   make run   - embedded PostgreSQL + Kafka-protocol broker + the four services
#   make test  - ruff, mypy --strict, bandit, import contracts, Kubernetes manifests, pytest (unit,
#                integration, e2e)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench profile lint typecheck security contracts manifests schemas unit integration e2e browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/partnerledger up

test: $(STAMP) lint typecheck security contracts browser manifests
	$(BIN)/pytest --ignore=tests/unit/test_k8s_manifests.py

lint: $(STAMP)
	$(BIN)/ruff check services shared partnerledger tests bench
	$(BIN)/ruff format --check services shared partnerledger tests bench

typecheck: $(STAMP)
	$(BIN)/mypy services shared partnerledger

# Static security checks of the product code (bandit, configured in pyproject's
# [tool.bandit]; DESIGN.md section 5).
security: $(STAMP)
	$(BIN)/bandit -q -r services shared -c pyproject.toml

contracts: $(STAMP)
	$(BIN)/lint-imports

# The Kubernetes deployment, offline (no cluster needed): every overlay of
# deploy/k8s rendered by kubectl's kustomize, built-in kinds validated against
# pinned Kubernetes schemas (kubernetes-validate --strict), Strimzi and
# CloudNativePG resources against deploy/crds, yamllint, and the manifests
# held against the code. Needs kubectl on PATH (it carries kustomize).
manifests: $(STAMP)
	$(BIN)/pytest -q tests/unit/test_k8s_manifests.py

# The benchmarks (not part of make test): the command profile, the demo's year
# through the four processes (bench/workload.py), the slice over HTTP and
# Kafka, a replay of REPLAY_EVENTS stored events (bench/replay.py), then the
# kpi readings and scoring run over a synthetic year (bench/kpi_readings.py);
# figures printed and written to bench/results/.
REPLAY_EVENTS ?= 1000000
bench: $(STAMP) profile
	$(BIN)/python -m bench.workload
	$(BIN)/python -m bench.slice
	$(BIN)/python -m bench.replay --events $(REPLAY_EVENTS)
	$(BIN)/python -m bench.kpi_readings

# Where a command's CPU goes: py-spy samples the partner process under load
# (bench/profile.py; needs ptrace, as root here), with tracing as configured
# and with no instrumentation at all.
profile: $(STAMP)
	$(BIN)/python -m bench.profile --out bench/results/profile.txt
	$(BIN)/python -m bench.profile --no-tracing --out bench/results/profile-no-tracing.txt

schemas: $(STAMP)
	$(BIN)/partnerledger schemas

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP) browser
	$(BIN)/pytest tests/e2e

# The KPI board's e2e test drives Debian's Chromium headless (never a browser
# download) and screenshots it with CJK fonts: both come from apt when missing
# and we are root; otherwise that one test is skipped and says why.
browser:
	@if command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and fonts-noto-cjk (apt) for the KPI board test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	else \
	  echo "chromium or fonts-noto-cjk missing and not root (apt-get install chromium fonts-noto-cjk): without chromium the KPI board browser test is skipped"; \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
