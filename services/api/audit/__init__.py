"""The hash-chained, append-only audit log: who did what, when, to which object, and the outcome."""
