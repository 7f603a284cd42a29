"""Prometheus metrics of the anchoring pipeline (exported by whichever process runs it)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ANCHORING_LAG = Gauge(
    "qilian_anchoring_lag_seconds", "Age of the oldest record not yet in an anchored batch"
)
BATCHES = Gauge("qilian_anchoring_batches", "Batches by status", ["status"])
INBOX_WAITING = Gauge(
    "qilian_anchoring_inbox_waiting", "Inbox events not yet turned into records (or rejected)"
)
RECORDS = Counter("qilian_anchoring_records_total", "Inbox events decided", ["outcome"])
GAS_USED = Counter("qilian_anchoring_gas_used_total", "Gas used by anchoring transactions")
LAST_GAS_USED = Gauge("qilian_anchoring_last_gas_used", "Gas used by the latest anchoring")
TRANSACTIONS = Counter(
    "qilian_anchoring_transactions_total", "Anchoring transactions by outcome", ["outcome"]
)
REORGS = Counter("qilian_anchoring_reorgs_total", "Anchored batches whose block left the chain")
RECONCILE_RESETS = Counter(
    "qilian_anchoring_reconcile_resets_total", "Batches reconciliation sent to be anchored again"
)
CONFLICTS = Counter(
    "qilian_anchoring_conflicts_total", "Batch ids holding a different root on chain"
)
NONCE_RESYNCS = Counter(
    "qilian_anchoring_nonce_resyncs_total", "Times the ledger's nonce differed from the chain's"
)
CONTRACT_MISSING = Gauge(
    "qilian_anchoring_contract_missing", "1 while the anchor contract has no code on the chain"
)
