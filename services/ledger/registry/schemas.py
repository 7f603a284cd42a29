"""API shapes of the registry's read-only endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class OperationPublic(BaseModel):
    """One FinancingRegistry operation as the ledger knows it (only hashes of the chain side)."""

    model_config = ConfigDict(from_attributes=True)

    operation_id: str
    action: str
    financing_id: str
    receivable_id: str
    part: bool
    reason: int | None
    state: str
    error: str | None
    fingerprint: str
    invoice_fingerprint: str | None
    financing_ref: str
    contract: str | None
    tx_hash: str | None
    block_number: int | None
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    completed_at: datetime | None


class FinancingOperations(BaseModel):
    """Every operation of one financing, oldest first."""

    financing_id: str
    operations: list[OperationPublic]


class FingerprintStatus(BaseModel):
    """``FinancingRegistry.status(fingerprint)`` read from the chain now."""

    chain_id: int
    contract: str
    fingerprint: str
    active: bool
    financing_ref: str | None
    since: int | None
