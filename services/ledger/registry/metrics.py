"""Prometheus metrics of the FinancingRegistry operations (exported by whichever process runs
them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OPERATIONS = Gauge("qilian_registry_operations", "FinancingRegistry operations by state", ["state"])
OLDEST_OPEN = Gauge(
    "qilian_registry_oldest_open_seconds",
    "Age of the oldest FinancingRegistry operation not yet done or refused",
)
TRANSACTIONS = Counter(
    "qilian_registry_transactions_total",
    "FinancingRegistry transactions by outcome (sent, mined, reverted, dropped)",
    ["outcome"],
)
OUTCOMES = Counter(
    "qilian_registry_outcomes_total", "FinancingRegistry operations decided", ["outcome"]
)
GAS_USED = Counter("qilian_registry_gas_used_total", "Gas used by FinancingRegistry transactions")
CHAIN_ERRORS = Counter(
    "qilian_registry_chain_errors_total", "Registry passes stopped by an unreachable chain"
)
