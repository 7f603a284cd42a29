"""API shapes of the receivable lifecycle: requests of the transitions, payments, disputes,
lineage and bulk confirmation results. Amounts are decimal strings in the receivable's currency."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from qilian.kit.money import Money, MoneyModel
from services.api.receivables.models import ReceivableDispute, ReceivablePayment
from services.api.receivables.schemas import ReceivablePublic

Amount = Annotated[str, Field(pattern=r"^[0-9]{1,15}(\.[0-9]{1,3})?$", examples=["1250.50"])]
Signature = Annotated[str, Field(pattern=r"^(0x)?[0-9a-fA-F]{130}$")]
Reason = Annotated[str, Field(min_length=1, max_length=1000)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfirmRequest(_Request):
    signature: Signature | None = Field(
        default=None, description="EIP-712 signature of the confirmation message (when required)"
    )


class RejectRequest(_Request):
    reason: Reason


class BulkConfirmItem(_Request):
    receivable_id: str
    signature: Signature | None = None


class BulkConfirmRequest(_Request):
    """Either the items to confirm, or ``all_pending`` for the whole queue (unsigned only)."""

    items: list[BulkConfirmItem] = Field(default_factory=list, max_length=500)
    all_pending: bool = False


class BulkConfirmResult(BaseModel):
    receivable_id: str
    status: int
    receivable: ReceivablePublic | None = None
    problem: dict[str, Any] | None = None


class BulkConfirmResponse(BaseModel):
    confirmed: int
    refused: int
    results: list[BulkConfirmResult]


class SplitPart(_Request):
    amount: Amount


class SplitRequest(_Request):
    parts: list[SplitPart] = Field(min_length=2, max_length=1000)


class SplitResponse(BaseModel):
    parent: ReceivablePublic
    children: list[ReceivablePublic]


class TransferRequest(_Request):
    to_organization_id: str
    amount: Amount | None = Field(default=None, description="a part only (splits first)")


class TransferResponse(BaseModel):
    parent: ReceivablePublic
    transferred: ReceivablePublic
    remainder: ReceivablePublic | None


class LineageNodePublic(BaseModel):
    """A part of the tree; ``receivable`` is null for an ancestor the caller is not party to."""

    id: str
    parent_id: str | None
    tier: int
    depth: int
    holding: str
    receivable: ReceivablePublic | None


class LineageResponse(BaseModel):
    root_id: str
    nodes: list[LineageNodePublic]


class PaymentRequest(_Request):
    amount: Amount
    paid_at: date
    reference: str = Field(min_length=1, max_length=140)
    final: bool = Field(
        default=False, description="a payment below the open amount that the debtor calls final"
    )


class PaymentPublic(BaseModel):
    id: str
    receivable_id: str
    payer_id: str
    payee_id: str
    amount: MoneyModel
    applied: MoneyModel
    unapplied: MoneyModel
    kind: str
    paid_at: date
    reference: str
    event_id: str

    @classmethod
    def of(cls, row: ReceivablePayment) -> PaymentPublic:
        def money(minor: int) -> MoneyModel:
            return MoneyModel.from_money(Money(minor, row.currency))

        return cls(
            id=row.id,
            receivable_id=row.receivable_id,
            payer_id=row.payer_id,
            payee_id=row.payee_id,
            amount=money(row.amount_minor),
            applied=money(row.applied_minor),
            unapplied=money(row.unapplied_minor),
            kind=row.kind,
            paid_at=row.paid_at,
            reference=row.reference,
            event_id=row.event_id,
        )


class PaymentResponse(BaseModel):
    payment: PaymentPublic
    receivable: ReceivablePublic


class WriteOffRequest(_Request):
    reason: Reason


class DisputeRequest(_Request):
    reason: Reason


class ResolveRequest(_Request):
    resolution: Reason


class DisputePublic(BaseModel):
    id: str
    receivable_id: str
    opened_by: str
    reason: str
    status: str
    resolution: str | None
    resolved_by: str | None
    opened_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: ReceivableDispute) -> DisputePublic:
        return cls.model_validate(row, from_attributes=True)


class DisputeResponse(BaseModel):
    dispute: DisputePublic
    receivable: ReceivablePublic
