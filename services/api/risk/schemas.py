"""API shapes of risk sharing, the pool, the indicators and the alerts. Money is
``{"amount": "…", "currency": "…"}``; rates and shares are decimal strings; floats are refused."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qilian.kit.money import MINOR_UNITS, Money, MoneyModel, PaymentReference
from services.api.organizations.models import Cluster
from services.api.risk.models import Alert, GuaranteeProgramme, Party, RiskClaim
from services.api.risk.service import LossShare, PoolState, ProgrammeTerms, claim_json


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("rates and shares are decimal strings, not floats")
    return value


Share = Annotated[
    Decimal,
    Field(
        gt=0,
        le=1,
        description='an exact decimal string, e.g. "0.4"',
        json_schema_extra={"type": "string"},
    ),
]


class LossShareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: Party
    share: Share
    organization_id: str | None = Field(
        default=None, max_length=40, description="only for an `other` party: who it is"
    )

    _share = field_validator("share", mode="before")(_no_float)


class ProgrammeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(default="CNY", description="ISO 4217; the programme covers it only")
    max_amount: MoneyModel | None = Field(
        default=None, description="largest face value of a request it covers"
    )
    clusters: list[Cluster] = Field(
        default_factory=list, description="the debtor core firm's cluster; empty: every cluster"
    )
    green_only: bool = Field(default=False, description="green suppliers only (绿色金融)")
    fee_rate: Annotated[Decimal, Field(ge=0, lt=1, json_schema_extra={"type": "string"})] = Field(
        description="annual guarantee fee on the covered amount (advance), ACT/365"
    )
    loss_shares: list[LossShareIn] = Field(
        min_length=1, description="guarantor, bank, pool and others; the shares sum to exactly 1"
    )

    _fee = field_validator("fee_rate", mode="before")(_no_float)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in MINOR_UNITS:
            raise ValueError(f"unsupported currency {value!r}")
        return value

    def terms(self) -> ProgrammeTerms:
        """What :func:`services.api.risk.service.create_programme` takes."""
        return ProgrammeTerms(
            name=self.name,
            currency=self.currency,
            max_amount=self.max_amount.amount if self.max_amount else None,
            clusters=[c.value for c in self.clusters],
            green_only=self.green_only,
            fee_rate=self.fee_rate,
            loss_shares=[LossShare(s.party, s.share, s.organization_id) for s in self.loss_shares],
        )


class ProgrammePublic(BaseModel):
    id: str
    guarantor_id: str
    name: str
    currency: str
    max_amount: MoneyModel | None
    clusters: list[str]
    green_only: bool
    fee_rate: Decimal
    loss_shares: list[dict[str, Any]]
    active: bool
    created_at: datetime | None

    @classmethod
    def of(cls, row: GuaranteeProgramme) -> ProgrammePublic:
        limit = row.max_amount_minor
        return cls(
            id=row.id,
            guarantor_id=row.guarantor_id,
            name=row.name,
            currency=row.currency,
            max_amount=(
                MoneyModel.from_money(Money(limit, row.currency)) if limit is not None else None
            ),
            clusters=list(row.clusters),
            green_only=row.green_only,
            fee_rate=row.fee_rate.normalize(),
            loss_shares=list(row.loss_shares),
            active=row.active,
            created_at=row.created_at,
        )


class TopUpCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyModel
    reference: PaymentReference = Field(description="the transfer's reference; trimmed")


class RecoveryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim_id: str = Field(min_length=1, max_length=40, description="a paid pool claim")
    amount: MoneyModel
    reference: PaymentReference = Field(description="the recovery's reference; trimmed")


class ClaimPaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyModel = Field(description="the claim's open amount, exactly")
    reference: PaymentReference = Field(
        description="the guarantor's payment reference (its bank transfer); trimmed"
    )


class PoolPublic(BaseModel):
    currency: str
    balance: MoneyModel
    exposure: MoneyModel = Field(
        description="the pool's share of the covered amount of live covered financings"
    )
    queued_claims: int
    queued_amount: MoneyModel

    @classmethod
    def of(cls, state: PoolState) -> PoolPublic:
        def money(minor: int) -> MoneyModel:
            return MoneyModel.from_money(Money(minor, state.currency))

        return cls(
            currency=state.currency,
            balance=money(state.balance_minor),
            exposure=money(state.exposure_minor),
            queued_claims=state.queued_count,
            queued_amount=money(state.queued_minor),
        )


class TopUpPublic(BaseModel):
    pool: PoolPublic
    claims_paid: list[dict[str, Any]]


class ClaimPublic(BaseModel):
    id: str
    financing_id: str
    party: str
    organization_id: str | None
    bank_id: str
    share: str
    loss: MoneyModel
    amount: MoneyModel
    recovered: MoneyModel
    state: str
    raised_at: str
    paid_at: str | None
    payment_entry_id: str | None = Field(
        description="the ledger entry of the payment (none for a paid claim of zero)"
    )
    payment_reference: str | None = Field(description="a guarantor's reference of its payment")

    @classmethod
    def of(cls, claim: RiskClaim) -> ClaimPublic:
        return cls.model_validate(claim_json(claim))


class VerificationPublic(BaseModel):
    ok: bool
    entries: int
    accounts: int
    head_hash: str
    problems: list[dict[str, Any]]


class AlertPublic(BaseModel):
    id: str
    rule: str
    subject: str
    period: str
    severity: str
    summary: str
    facts: dict[str, Any]
    raised_at: datetime

    @classmethod
    def of(cls, row: Alert) -> AlertPublic:
        return cls(
            id=row.id,
            rule=row.rule,
            subject=row.subject,
            period=row.period,
            severity=row.severity,
            summary=row.summary,
            facts=row.facts,
            raised_at=row.raised_at,
        )
