# The two commands of the quick start: `make run` and `make test`. Both install what they need:
# uv (pinned) into .tools/, the locked Python dependencies into .venv/, and the pinned npm packages
# (solc, anvil, cast, OpenZeppelin) into contracts/node_modules/.

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint format typecheck imports pytest compile-contracts clean \
	chaos chaos-long model-large

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund
	@touch $@

install: $(VENV)/.synced contracts/node_modules/.installed

## make run: the whole platform on this machine (embedded PostgreSQL, anvil, embedded broker)
run: install
	$(BIN)/qilian up

## make test: lint, types, import contract, then every test layer
test: install
	./scripts/install-test-tools.sh
	$(MAKE) lint typecheck imports pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck:
	$(BIN)/mypy

imports:
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest

## make chaos: the fault suite (each fault on its own and together), figures in docs/reliability.md
CHAOS_RESULTS := var/chaos-results.jsonl
define run-chaos
	@mkdir -p var && rm -f $(CHAOS_RESULTS)
	QILIAN_CHAOS_PROFILE=$(1) QILIAN_CHAOS_REPORT=$(CHAOS_RESULTS) $(BIN)/pytest tests/chaos \
		-p no:cacheprovider; status=$$?; \
	if [ -s $(CHAOS_RESULTS) ]; then $(BIN)/python -m tests.chaos.report $(CHAOS_RESULTS) \
		docs/reliability.md; fi; exit $$status
endef

chaos: install
	$(call run-chaos,full)

## make chaos-long: the same with the long workload (more actors, five minutes a run)
chaos-long: install
	$(call run-chaos,long)

## make model-large: the marketplace state machine, many more and longer runs
model-large: install
	QILIAN_MODEL_EXAMPLES=100 QILIAN_MODEL_STEPS=60 $(BIN)/pytest tests/model -p no:cacheprovider

compile-contracts: contracts/node_modules/.installed
	cd contracts && npm run compile

clean:
	rm -rf $(VENV) $(TOOLS) contracts/node_modules .mypy_cache .ruff_cache .pytest_cache
