"""API shapes of receivables: money as ``{"amount": "…", "currency": "…"}``, each state axis
named, anchoring as fetched from the ledger."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from qilian.kit.money import Money, MoneyModel
from services.api.receivables.ledger import EventAnchoring
from services.api.receivables.models import Receivable, ReceivableEvent

AnchorStatus = Literal["pending", "anchored", "final", "unknown"]


class ReceivableStates(BaseModel):
    """One value per lifecycle axis (ARCHITECTURE.md, "Lifecycles")."""

    confirmation: str
    holding: str
    financing: str
    settlement: str
    dispute: str


class ReceivablePublic(BaseModel):
    """A receivable as its parties see it."""

    model_config = ConfigDict(frozen=True)

    id: str
    invoice_id: str
    parent_id: str | None
    root_id: str | None
    tier: int
    depth: int
    creditor_id: str
    holder_id: str
    debtor_id: str
    financier_id: str | None = None
    face_value: MoneyModel
    open_amount: MoneyModel
    issue_date: date
    due_date: date
    due_date_source: str
    states: ReceivableStates
    event_seq: int
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, row: Receivable) -> ReceivablePublic:
        return cls(
            id=row.id,
            invoice_id=row.invoice_id,
            parent_id=row.parent_id,
            root_id=row.root_id,
            tier=row.tier,
            depth=row.depth,
            creditor_id=row.creditor_id,
            holder_id=row.holder_id,
            debtor_id=row.debtor_id,
            financier_id=row.financier_id,
            face_value=MoneyModel.from_money(Money(row.face_value_minor, row.currency)),
            open_amount=MoneyModel.from_money(Money(row.open_amount_minor, row.currency)),
            issue_date=row.issue_date,
            due_date=row.due_date,
            due_date_source=row.due_date_source,
            states=ReceivableStates(
                confirmation=row.confirmation,
                holding=row.holding,
                financing=row.financing,
                settlement=row.settlement,
                dispute=row.dispute,
            ),
            event_seq=row.event_seq,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EventAnchoringPublic(BaseModel):
    event_id: str
    seq: int
    status: AnchorStatus
    batch_id: int | None
    tx_hash: str | None
    block_number: int | None

    @classmethod
    def of(cls, item: EventAnchoring) -> EventAnchoringPublic:
        return cls.model_validate(item, from_attributes=True)


class Anchoring(BaseModel):
    """Kept by the ledger: ``pending`` → ``anchored`` → ``final`` per event; ``status`` is the
    least advanced event's, ``unknown`` when the ledger could not be asked."""

    status: AnchorStatus
    events: list[EventAnchoringPublic]


class ReceivableDetail(ReceivablePublic):
    anchoring: Anchoring


class ReceivableEventPublic(BaseModel):
    """One event as recorded (the exact payload the ledger anchors, plus its id)."""

    event_id: str
    receivable_id: str
    seq: int
    type: str
    at: str
    actor: str
    data: dict[str, Any]

    @classmethod
    def of(cls, row: ReceivableEvent) -> ReceivableEventPublic:
        from services.api.receivables.service import format_at

        return cls(
            event_id=row.event_id,
            receivable_id=row.receivable_id,
            seq=row.seq,
            type=row.type,
            at=format_at(row.at),
            actor=row.actor,
            data=row.data,
        )
