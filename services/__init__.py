"""Qilian's three services: api, ledger and worker. They share only ``qilian.kit``."""

import qilian.kit  # noqa: F401  (fixes the constraint naming convention before any table)
