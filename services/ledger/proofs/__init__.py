"""The ledger's read-only auditor endpoints: proof bundles, anchored batches, verification."""
