# Portcullis developer commands. `make` alone lists them.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install dev test lint format lock bench

help: ## List the commands
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed ## Create .venv and install the pinned requirements

$(VENV)/.installed: requirements.txt shared/pyproject.toml services/auth/pyproject.toml services/resource/pyproject.toml cli/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

dev: install ## Run the stack on embedded defaults (SQLite, data in .portcullis/)
	$(BIN)/portcullis dev

test: install ## Run every test (needs Postgres and Redis, or a Docker engine)
	$(BIN)/pytest

lint: install ## ruff, mypy --strict, the import rules, the compose file and the manifests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(BIN)/kubernetes-validate --kubernetes-version 1.31.0 --strict --quiet \
		$(filter-out deploy/k8s/kustomization.yaml,$(wildcard deploy/k8s/*.yaml)) \
		$(wildcard deploy/k8s/examples/*.yaml)

format: install ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: ## Re-pin requirements.txt from the pyproject files (needs uv)
	uv lock
	uv export --frozen --all-groups --no-emit-project --no-hashes --format requirements-txt -o requirements.txt

bench: install ## Load benchmarks: token costs beside same-run baselines (needs wrk, Postgres, Redis)
	$(BIN)/python -m bench.run
