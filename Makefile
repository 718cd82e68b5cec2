# Every target sets up what it needs first (scripts/setup.sh is idempotent and quick when nothing changed).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OTKLIK := $(VENV)/bin/otklik
PYTEST_ARGS ?=
BENCH ?=

.PHONY: help setup run dev test test-unit test-integration test-e2e test-standalone soak lint typecheck \
        build schemas seed bench classify train eval eval-real eval-grouping clean plan deploy

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup:  ## install everything: Python venv, standalone emulators (apt/npm/go)
	@bash scripts/setup.sh

run: setup  ## run the demo feed once through the whole local stack and print what happened
	@$(OTKLIK) run

dev: setup  ## keep the local stack up (Ctrl-C stops it)
	@$(OTKLIK) dev

test: setup  ## lint, type-check, then every test (unit, integration, e2e)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup  ## fast tests with in-memory fakes
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: setup  ## adapters against real servers on loopback
	@$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: setup  ## the whole local stack
	@$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test-standalone: setup  ## integration and e2e tests on the standalone (npm + pstest) emulators
	@OTKLIK_EMULATORS=standalone $(PY) -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

soak: setup  ## rounds of posts on the local stack under random faults (SOAK_ROUNDS=12 SOAK_POSTS=40 SOAK_SEED=2026)
	@$(PY) -m pytest tests/soak -m soak -s --timeout=3600 $(PYTEST_ARGS)

lint: setup  ## ruff
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: setup  ## mypy --strict on shared/ and otklik/
	@$(VENV)/bin/mypy

build: setup  ## one deployable folder per function in build/functions/
	@$(OTKLIK) build

TF := terraform -chdir=infra/terraform
TFVARS ?= infra/terraform/prod.tfvars
TFBACKEND ?= infra/terraform/backend.hcl

plan: build  ## build, then terraform init (state bucket from TFBACKEND) + plan with TFVARS (default infra/terraform/prod.tfvars) into tfplan
	@command -v terraform >/dev/null || { echo "terraform is not installed: https://developer.hashicorp.com/terraform/install" >&2; exit 1; }
	@test -f "$(TFVARS)" || { echo "$(TFVARS) not found: copy infra/terraform/example.tfvars and fill it in" >&2; exit 1; }
	@test -f "$(TFBACKEND)" || { echo "$(TFBACKEND) not found: copy infra/terraform/backend.example.hcl and fill in the state bucket" >&2; exit 1; }
	$(TF) init -input=false -reconfigure -backend-config=$(abspath $(TFBACKEND))
	$(TF) plan -input=false -var-file=$(abspath $(TFVARS)) -out=tfplan

deploy: plan  ## plan, then apply exactly that plan (review the plan's output first)
	$(TF) apply -input=false tfplan

schemas: setup  ## regenerate docs/schemas/ from the message contracts
	@$(OTKLIK) schemas

seed: setup  ## validate config/ and load departments into Firestore (FIRESTORE_EMULATOR_HOST or real project)
	@$(OTKLIK) seed

bench: setup  ## speed, memory and cost -> bench/results/*.json (BENCH="classifier cold_start ingest pipeline cost")
	@$(PY) -m bench.run $(BENCH)

classify:  ## classify JSON Lines from stdin to stdout (set-up output goes to stderr)
	@bash scripts/setup.sh >&2
	@$(OTKLIK) classify

train: setup  ## fit the classifier's model on corpus/ (training split) into shared/classifier/model.json
	@$(OTKLIK) train

eval: setup  ## the classifier on the corpus's held-out split: precision/recall, confusion, danger recall
	@$(OTKLIK) eval

eval-real: setup  ## the classifier on real posts (../shared/eval/real_dev.jsonl or OTKLIK_REAL_EVAL) -> bench/results/eval_real.json
	@$(OTKLIK) eval-real

eval-grouping: setup  ## grouping posts into incidents on corpus/grouping/pairs.jsonl: precision/recall -> bench/results/grouping.json
	@$(OTKLIK) eval-grouping

clean:  ## remove build output and local state (keeps .venv and tools)
	rm -rf build .otklik/dev .pytest_cache .mypy_cache .ruff_cache
