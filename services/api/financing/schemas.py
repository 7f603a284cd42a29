"""API shapes of the marketplace. Money is ``{"amount": "…", "currency": "…"}``; rates are
decimal strings (``"0.0385"`` is 3.85 % a year); floats are refused."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qilian.kit.money import Money, MoneyModel, PaymentReference
from services.api.financing import pricing
from services.api.financing.models import (
    FinancingRecord,
    FinancingRequest,
    FinancingRequestItem,
    Offer,
    Recourse,
)

Rate = Annotated[
    Decimal,
    Field(
        max_digits=10,
        decimal_places=8,
        description='a decimal string, e.g. "0.0385" for 3.85 % a year',
        json_schema_extra={"type": "string"},
    ),
]


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("rates are decimal strings, not floats")
    return value


class RequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receivable_ids: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        min_length=1, description="confirmed receivables the caller holds"
    )
    closes_at: datetime = Field(description="bids are accepted until then (RFC 3339)")
    min_advance_rate: Rate | None = Field(default=None, gt=0, le=1)
    recourse: Recourse = Recourse.any
    programme_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="a guarantee programme (gpr_…) whose cover the request asks for (政银担)",
    )

    _rates = field_validator("min_advance_rate", mode="before")(_no_float)


class Party(BaseModel):
    id: str
    name: str
    cluster: str | None = None


class RequestItemPublic(BaseModel):
    receivable_id: str
    amount: MoneyModel
    due_date: date
    tier: int
    anchoring: str = Field(description="pending, anchored, final, or unknown (ledger unreachable)")


class RequestPublic(BaseModel):
    """A financing request as a bank sees it (what it needs to price it, nothing else) and as
    its requester sees it (plus ``requester_id`` and the count of active offers)."""

    id: str
    state: str
    state_reason: str | None
    closes_at: datetime
    face_value: MoneyModel
    due_date: date
    debtor: Party
    tier: int
    min_advance_rate: Decimal | None
    recourse: str
    receivables: list[RequestItemPublic]
    anchoring: str
    created_at: datetime | None
    requester_id: str | None = Field(default=None, description="shown to the requester only")
    active_offers: int | None = Field(default=None, description="shown to the requester only")
    accepted_offer_id: str | None = Field(
        default=None, description="shown to the requester, and to the bank whose offer won"
    )
    guarantee: dict[str, Any] | None = Field(
        default=None,
        description="the guarantee programme the request asks for: guarantor, fee rate, loss "
        "shares (what a bank needs to price the cover)",
    )


class OfferCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_rate: Rate = Field(gt=0, le=1, description="share of face value advanced")
    annual_rate: Rate = Field(ge=0, lt=1, description="annual discount rate")
    fee: MoneyModel
    day_count: pricing.DayCount
    recourse: bool
    expires_at: datetime | None = Field(
        default=None, description="defaults to the request's closes_at, never later"
    )

    _rates = field_validator("advance_rate", "annual_rate", mode="before")(_no_float)


class QuotePublic(BaseModel):
    days: int
    advance_amount: MoneyModel
    discount: MoneyModel
    net_proceeds: MoneyModel
    effective_annual_rate: Decimal

    @classmethod
    def of(cls, quote: pricing.Quote) -> QuotePublic:
        return cls(
            days=quote.days,
            advance_amount=MoneyModel.from_money(quote.advance_amount),
            discount=MoneyModel.from_money(quote.discount),
            net_proceeds=MoneyModel.from_money(quote.net_proceeds),
            effective_annual_rate=quote.effective_annual_rate,
        )


class OfferPublic(BaseModel):
    id: str
    request_id: str
    bank_id: str
    state: str
    advance_rate: Decimal
    annual_rate: Decimal
    fee: MoneyModel
    day_count: str
    recourse: bool
    expires_at: datetime
    replaces_id: str | None
    created_at: datetime
    rank: int | None = Field(default=None, description="1 = best net proceeds (active only)")
    days: int | None = Field(default=None, description="days from today to the due date")
    advance_amount: MoneyModel | None = Field(
        default=None, description="face value × advance rate (if accepted today)"
    )
    discount: MoneyModel | None = None
    net_proceeds: MoneyModel | None = Field(
        default=None, description="what the supplier receives if it accepts today"
    )
    effective_annual_rate: Decimal | None = None

    @classmethod
    def of(
        cls, offer: Offer, quote: pricing.Quote | None = None, rank: int | None = None
    ) -> OfferPublic:
        return cls(
            id=offer.id,
            request_id=offer.request_id,
            bank_id=offer.bank_id,
            state=offer.state,
            advance_rate=offer.advance_rate,
            annual_rate=offer.annual_rate,
            fee=MoneyModel.from_money(Money(offer.fee_minor, offer.currency)),
            day_count=offer.day_count,
            recourse=offer.recourse,
            expires_at=offer.expires_at,
            replaces_id=offer.replaces_id,
            created_at=offer.created_at,
            rank=rank,
            **(QuotePublic.of(quote).model_dump() if quote else {}),
        )


class DisbursementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: PaymentReference = Field(description="the bank's payment reference; trimmed")
    amount: MoneyModel | None = Field(
        default=None, description="if given, must equal the net proceeds"
    )


class FinancingPublic(BaseModel):
    id: str
    request_id: str
    offer_id: str
    bank_id: str
    supplier_id: str
    debtor_id: str
    state: str
    state_reason: str | None
    receivable_ids: list[str]
    face_value: MoneyModel
    advance_amount: MoneyModel
    discount: MoneyModel
    fee: MoneyModel
    net_proceeds: MoneyModel
    effective_annual_rate: Decimal
    advance_rate: Decimal
    annual_rate: Decimal
    day_count: str
    days: int
    recourse: bool
    due_date: date
    accepted_at: datetime
    registered_at: datetime | None
    fund_by: datetime | None
    funded_at: datetime | None
    disbursement_reference: str | None
    repaid: MoneyModel
    recourse_claim: MoneyModel
    closed_at: datetime | None
    registry: list[dict[str, Any]] = Field(
        description="the FinancingRegistry operations (register/release per receivable) and "
        "their outcome on chain"
    )
    guarantee: dict[str, Any] | None = Field(
        default=None, description="guarantee cover and loss shares, when a programme covers it"
    )

    @classmethod
    def of(
        cls,
        row: FinancingRecord,
        receivable_ids: list[str],
        registry: list[dict[str, Any]],
        *,
        bank_view: bool = True,
    ) -> FinancingPublic:
        def money(minor: int) -> MoneyModel:
            return MoneyModel.from_money(Money(minor, row.currency))

        return cls(
            id=row.id,
            request_id=row.request_id,
            offer_id=row.offer_id,
            bank_id=row.bank_id,
            supplier_id=row.supplier_id,
            debtor_id=row.debtor_id,
            state=row.state,
            state_reason=row.state_reason,
            receivable_ids=receivable_ids,
            face_value=money(row.face_value_minor),
            advance_amount=money(row.advance_minor),
            discount=money(row.discount_minor),
            fee=money(row.fee_minor),
            net_proceeds=money(row.net_proceeds_minor),
            effective_annual_rate=row.effective_annual_rate,
            advance_rate=row.advance_rate,
            annual_rate=row.annual_rate,
            day_count=row.day_count,
            days=row.days,
            recourse=row.recourse,
            due_date=row.due_date,
            accepted_at=row.accepted_at,
            registered_at=row.registered_at,
            fund_by=row.fund_by,
            funded_at=row.funded_at,
            disbursement_reference=row.disbursement_reference,
            repaid=money(row.repaid_minor),
            recourse_claim=money(row.recourse_claim_minor),
            closed_at=row.closed_at,
            registry=registry,
        )


def item_public(
    item: FinancingRequestItem, due: date, tier: int, currency: str, anchoring: str
) -> RequestItemPublic:
    return RequestItemPublic(
        receivable_id=item.receivable_id,
        amount=MoneyModel.from_money(Money(item.amount_minor, currency)),
        due_date=due,
        tier=tier,
        anchoring=anchoring,
    )


__all__ = [
    "DisbursementCreate",
    "FinancingPublic",
    "FinancingRequest",
    "OfferCreate",
    "OfferPublic",
    "Party",
    "QuotePublic",
    "RequestCreate",
    "RequestItemPublic",
    "RequestPublic",
    "item_public",
]
