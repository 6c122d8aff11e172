# Almanac's developer entry points. `make test` is the one CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: help venv tools cluster-up cluster-down cluster-status lint format unit test bench dev \
        crds crd-schemas manifests clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "==> virtualenv $(VENV) with almanac-operator[test]"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv and install the project with its test extras

tools: ## build (once per machine, cached in ~/.cache/almanac) the control-plane binaries
	@bash hack/build-tools.sh >/dev/null

cluster-up: venv tools ## start the local control plane (.cluster/kubeconfig)
	@$(BIN)/python hack/cluster.py up

cluster-down: venv ## stop the local control plane and remove its state
	@$(BIN)/python hack/cluster.py down

cluster-status: venv ## show the local control plane's processes and health
	@$(BIN)/python hack/cluster.py status

lint: venv ## ruff (lint and format check) and mypy --strict
	@echo "==> lint"
	@$(BIN)/ruff check operator tests hack
	@$(BIN)/ruff format --check operator tests hack
	@$(BIN)/mypy

format: venv ## apply ruff's fixes and formatting
	@$(BIN)/ruff check --fix operator tests hack
	@$(BIN)/ruff format operator tests hack

unit: venv ## the fast tests only: no cluster
	@$(BIN)/pytest -m "not cluster" -q

test: venv tools lint ## lint and the whole suite, two workers, a control plane each
	@echo "==> tests, two workers (each starts its control plane: .cluster/ unless make cluster-up runs it, .cluster-gw1/)"
	@$(BIN)/pytest -q -n 2 --dist worksteal

dev: venv tools ## local control plane + CRDs + samples, and the operator in the foreground
	@bash hack/dev.sh

bench: venv ## benchmarks (figures in the README)
	@$(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-columns=min,mean,median,ops -q

clean: cluster-down ## remove the local state and the virtualenv (not the binary cache)
	@rm -rf $(VENV)

# ---- packaging: chart and plain manifests (charts/almanac, manifests/install) --------
# Targets `crd-schemas`, `manifests` and `chart-lint`; helm is the version pinned in
# hack/tools/helm.

crd-schemas: venv ## write the generated parts of crds/: jobTemplate (pinned Kubernetes), the bounds
	@$(BIN)/python hack/crd-job-template.py
	@$(BIN)/python hack/crd-bounds.py

manifests: ## copy crds/ into the chart, render manifests/install/almanac.yaml (commit both)
	@bash hack/generate-manifests.sh

chart-lint: ## helm lint the chart, with its defaults and with every optional part on
	@helm=$$(bash hack/build-tools.sh | sed -n 's/^helm=//p'); \
	"$$helm" lint --strict charts/almanac; \
	"$$helm" lint --strict charts/almanac --set webhook.enabled=true \
	  --set prometheus.serviceMonitor.enabled=true --set prometheus.prometheusRule.enabled=true \
	  --set grafana.dashboard.enabled=true --set 'watchNamespaces={team-a,team-b}' --set replicaCount=2

.PHONY: chart-lint
# ---- end of packaging --------------------------------------------------------------
