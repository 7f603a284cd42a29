"""FinancingRegistry operations: the ledger's side of the on-chain double-financing guard."""
