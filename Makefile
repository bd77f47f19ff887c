# Gatehouse developer commands. Every target creates the virtualenv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint format bench dev clean deploy destroy package infra

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Gatehouse needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)  ## start the local stack, send real traffic, print what happened
	$(BIN)/gatehouse demo

dev: $(STAMP)  ## run the local stack in the foreground (Ctrl-C stops it)
	$(BIN)/gatehouse dev

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## unit and functional tiers only
	$(BIN)/python -m pytest tests/unit tests/functional

lint: $(STAMP)  ## ruff and mypy (strict on chalicelib)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint infra/*.yaml

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## benchmarks; they print figures and ratios, they do not pass or fail
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

infra: $(STAMP)  ## rebuild infra/athena.yaml from infra/athena/*.sql (tables and named queries)
	$(BIN)/python -m gatehouse.infra_athena

# Deploying to AWS (docs/deploy.md). STAGE=dev|prod; EVENTS_PER_OBJECT is the
# writer's SQS batch size (1000-10000). `make destroy` wants CONFIRM=<stage>.
STAGE ?= dev
EVENTS_PER_OBJECT ?= 1000
BATCHING_WINDOW ?= 30
DEPLOY := $(BIN)/python -m gatehouse.deploy

deploy: $(STAMP)  ## infra stack, Athena stack, chalice deploy, then the wiring Chalice cannot do
	$(DEPLOY) deploy --stage $(STAGE) --events-per-object $(EVENTS_PER_OBJECT) --batching-window $(BATCHING_WINDOW)

destroy: $(STAMP)  ## remove what may be removed; print what Object Lock keeps
	$(DEPLOY) destroy --stage $(STAGE) --confirm "$(CONFIRM)"

package: $(STAMP)  ## one CloudFormation template in out/$(STAGE)/ (chalice package --merge-template)
	$(DEPLOY) package --stage $(STAGE) --events-per-object $(EVENTS_PER_OBJECT) --batching-window $(BATCHING_WINDOW)

clean:
	rm -rf $(VENV) .gatehouse .pytest_cache .mypy_cache .ruff_cache
