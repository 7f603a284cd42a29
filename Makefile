# The two commands of the quick start: `make run` and `make test`. Both install what they need:
# uv (pinned) into .tools/, the locked Python dependencies into .venv/, and the pinned npm packages
# (solc, anvil, cast, OpenZeppelin) into contracts/node_modules/.

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint format typecheck imports pytest compile-contracts clean

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

compile-contracts: contracts/node_modules/.installed
	cd contracts && npm run compile

clean:
	rm -rf $(VENV) $(TOOLS) contracts/node_modules .mypy_cache .ruff_cache .pytest_cache
