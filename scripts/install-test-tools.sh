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

# Browser tests (tests/browser) drive Debian's chromium through Playwright's Python package
# (`executable_path=shutil.which("chromium")`); Playwright's own browser download is never used.
# A CJK font (WenQuanYi Zen Hei) lets the Chinese pages' screenshots show their text.
browser_packages=()
command -v chromium >/dev/null 2>&1 || browser_packages+=(chromium)
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then browser_packages+=(fonts-wqy-zenhei); fi
if [ "${#browser_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "install-test-tools: installing ${browser_packages[*]} (apt-get) for the browser tests"
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${browser_packages[@]}"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        echo "install-test-tools: installing ${browser_packages[*]} (sudo apt-get) for the browser tests"
        sudo -n apt-get update -qq \
            && sudo -n apt-get install -y -qq --no-install-recommends "${browser_packages[@]}"
    else
        echo "install-test-tools: ${browser_packages[*]} missing and neither root nor passwordless" \
            "sudo is available to install it; without chromium tests/browser is skipped"
    fi
fi
