"""Receivables: the supplier's claim on a core firm that intake creates, its state axes, its event
history (each event also an outbox event of topic ``receivable.event``, anchored by the ledger)
and its read API with anchoring status and proofs fetched from the ledger over HTTP."""
