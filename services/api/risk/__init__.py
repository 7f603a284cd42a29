"""Risk sharing (政银担): guarantee programmes, covers, claims, the risk compensation pool's
double-entry ledger; and the regulator's cluster indicators and early warnings."""
