#!/usr/bin/env bash
# Installs what the test suite needs beyond a fresh checkout. Idempotent and quick when everything
# is already there; `make test` runs it first.
#
# - check-jsonschema (its vendored Compose Specification schema validates docker-compose.yml) and
#   PyYAML (parses the Kubernetes manifests): locked dev dependencies in uv.lock, synced if missing.
#   `--inexact` leaves alone anything else installed in the venv.
#
# Not installed here, used when present: a Compose v2 CLI (`docker compose config --quiet`; neither
# PyPI nor Debian 12 ships an official one) and kubectl (`kubectl kustomize deploy/k8s`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# the pinned uv that `make` bootstraps into .tools/, else one on PATH
uv() { if [ -x .tools/bin/uv ]; then .tools/bin/uv "$@"; else command uv "$@"; fi; }

if ! uv run --frozen --no-sync python -c "import check_jsonschema, yaml" >/dev/null 2>&1; then
    echo "install-test-tools: syncing the locked dev dependencies (check-jsonschema, pyyaml)"
    uv sync --frozen --inexact
fi
