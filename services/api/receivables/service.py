"""Business rules of receivables: creation by intake, the event history, dilution by a credit note,
and what a caller may see.

Every change is an event: :func:`record_event` allocates the next ``seq`` while holding the
receivable's row lock (``SELECT … FOR UPDATE``), writes ``platform.receivable_events`` and emits
the same event to the outbox (topic ``receivable.event``, outbox ``event_id`` = the event's id) in
the caller's transaction, so a committed change always has its event and a rolled-back one never.
The payload is exactly what the ledger anchors: ``receivable_id``, ``seq``, ``type``, ``at``,
``actor`` and ``data`` (amounts as decimal strings beside their currency, never floats).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import ids, outbox
from qilian.kit.errors import Conflict, InvalidInput, NotFound
from qilian.kit.money import Money
from services.api.auth.models import Principal
from services.api.organizations.models import Role
from services.api.receivables import repository
from services.api.receivables.models import (
    Confirmation,
    DueDateSource,
    Financing,
    Holding,
    Receivable,
    ReceivableEvent,
)

TOPIC: Final = "receivable.event"


def format_at(moment: datetime) -> str:
    """An event time as the ledger's records write it: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def payload(event: ReceivableEvent) -> dict[str, Any]:
    """The ``receivable.event`` payload of an event (what the ledger hashes and anchors)."""
    return {
        "receivable_id": event.receivable_id,
        "seq": event.seq,
        "type": event.type,
        "at": format_at(event.at),
        "actor": event.actor,
        "data": event.data,
    }


def face_value(receivable: Receivable) -> Money:
    return Money(receivable.face_value_minor, receivable.currency)


def open_amount(receivable: Receivable) -> Money:
    return Money(receivable.open_amount_minor, receivable.currency)


async def record_event(
    session: AsyncSession,
    receivable_id: str,
    type_: str,
    actor: str,
    data: dict[str, Any],
    change: Callable[[Receivable], None] | None = None,
) -> tuple[Receivable, ReceivableEvent]:
    """Lock the receivable, apply ``change`` to it, and append the event that records it."""
    receivable = await repository.lock(session, receivable_id)
    if receivable is None:
        raise NotFound(f"there is no receivable {receivable_id}")
    if change is not None:
        change(receivable)
    receivable.event_seq += 1
    receivable.updated_at = datetime.now(UTC)
    session.add(receivable)
    return receivable, await append_event(session, receivable, type_, actor, data)


async def append_event(
    session: AsyncSession, receivable: Receivable, type_: str, actor: str, data: dict[str, Any]
) -> ReceivableEvent:
    """Write the event numbered ``receivable.event_seq`` and its outbox row (the caller holds
    the row lock, or created the row in this transaction)."""
    event = ReceivableEvent(
        event_id=ids.new_id("evt"),
        receivable_id=receivable.id,
        seq=receivable.event_seq,
        type=type_,
        at=datetime.now(UTC),
        actor=actor,
        data=data,
    )
    await repository.add(session, event)
    await outbox.emit(session, TOPIC, payload(event), event_id=event.event_id)
    return event


@dataclass(frozen=True)
class NewReceivable:
    id: str
    invoice_id: str
    creditor_id: str
    debtor_id: str
    amount: Money
    issue_date: date
    due_date: date
    due_date_source: DueDateSource


def _build(
    new: NewReceivable, actor: str, data: dict[str, Any]
) -> tuple[Receivable, ReceivableEvent]:
    if not new.amount.is_positive():
        raise InvalidInput("a receivable's amount must be positive")
    receivable = Receivable(
        id=new.id,
        invoice_id=new.invoice_id,
        creditor_id=new.creditor_id,
        holder_id=new.creditor_id,
        debtor_id=new.debtor_id,
        currency=new.amount.currency,
        face_value_minor=new.amount.minor,
        open_amount_minor=new.amount.minor,
        issue_date=new.issue_date,
        due_date=new.due_date,
        due_date_source=new.due_date_source.value,
        event_seq=1,
    )
    created = {
        "invoice_id": new.invoice_id,
        "creditor": new.creditor_id,
        "debtor": new.debtor_id,
        "face_value": new.amount.to_json(),
        "issue_date": new.issue_date.isoformat(),
        "due_date": new.due_date.isoformat(),
        "due_date_source": new.due_date_source.value,
        **data,
    }
    event = ReceivableEvent(
        event_id=ids.new_id("evt"),
        receivable_id=receivable.id,
        seq=1,
        type="created",
        at=datetime.now(UTC),
        actor=actor,
        data=created,
    )
    return receivable, event


async def create(
    session: AsyncSession, new: NewReceivable, actor: str, data: dict[str, Any]
) -> tuple[Receivable, ReceivableEvent]:
    """A pending, unfinanced, open receivable and its ``created`` event (seq 1). The row is new
    in this transaction, so no other transaction can lock it: seq 1 needs no lock."""
    receivable, event = _build(new, actor, data)
    await repository.add(session, receivable)
    await repository.add(session, event)
    await outbox.emit(session, TOPIC, payload(event), event_id=event.event_id)
    return receivable, event


async def create_many(
    session: AsyncSession, items: list[tuple[NewReceivable, str, dict[str, Any]]]
) -> list[tuple[Receivable, ReceivableEvent]]:
    """:func:`create` for many receivables in three multi-row INSERTs (bulk imports): the rows,
    their ``created`` events, and the events' outbox rows (same ids, same payloads as
    :func:`qilian.kit.outbox.emit` writes)."""
    built = [_build(new, actor, data) for new, actor, data in items]
    if built:
        await repository.insert_many(
            session,
            [r for r, _ in built],
            [e for _, e in built],
            [(e.event_id, TOPIC, payload(e)) for _, e in built],
        )
    return built


class DilutionRefused(Conflict):
    slug, title = "dilution-refused", "Credit note cannot dilute this receivable"


async def dilute(
    session: AsyncSession, receivable_id: str, amount: Money, actor: str, data: dict[str, Any]
) -> tuple[Receivable, ReceivableEvent]:
    """Reduce the open amount by a credit note's amount (``diluted`` event), under the row lock.

    Refused when the receivable is financed or in an auction (the financier must agree first),
    rejected or cancelled, in another currency, or when the credit exceeds the open amount.
    """

    receivable = await repository.lock(session, receivable_id)
    if receivable is None:
        raise NotFound(f"there is no receivable {receivable_id}")
    if receivable.currency != amount.currency:
        raise DilutionRefused(
            f"the credit note is in {amount.currency}, the receivable in {receivable.currency}",
            extra={"reason": "credit_note_currency"},
        )
    if receivable.financing != Financing.unfinanced:
        raise DilutionRefused(
            "the receivable is being financed; a credit note cannot reduce it here",
            extra={"reason": "credit_note_financed"},
        )
    if receivable.holding != Holding.held:
        raise DilutionRefused(
            f"the receivable was {receivable.holding} into parts; dilute the parts",
            extra={"reason": "credit_note_not_held"},
        )
    if receivable.confirmation in (Confirmation.rejected, Confirmation.cancelled):
        raise DilutionRefused(
            f"the receivable is {receivable.confirmation}", extra={"reason": "credit_note_closed"}
        )
    before = open_amount(receivable)
    if amount.minor > before.minor:
        raise DilutionRefused(
            f"the credit note ({amount}) exceeds the open amount ({before})",
            extra={"reason": "credit_note_exceeds_open_amount"},
        )
    after = before - amount

    def change(row: Receivable) -> None:
        row.open_amount_minor = after.minor
        row.diluted_minor += amount.minor

    details = {
        "credit": amount.to_json(),
        "open_amount_before": before.to_json(),
        "open_amount_after": after.to_json(),
        **data,
    }
    return await record_event(session, receivable_id, "diluted", actor, details, change)


def is_party(receivable: Receivable, organization_id: str) -> bool:
    return organization_id in (
        receivable.creditor_id,
        receivable.holder_id,
        receivable.debtor_id,
        receivable.financier_id,
    )


async def get_visible(
    session: AsyncSession, principal: Principal, receivable_id: str, *, auditors: bool = False
) -> Receivable:
    """The receivable if the caller is a party (or, with ``auditors``, an auditor); else 404."""
    if auditors and principal.role == Role.auditor:
        found = await repository.get(session, receivable_id)
    else:
        found = await repository.get_for_party(session, receivable_id, principal.organization_id)
    if found is None:
        raise NotFound(f"there is no receivable {receivable_id}")
    return found
