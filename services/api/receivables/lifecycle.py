"""The transitions of a receivable after intake: confirmation (确权), vouchers (split, transfer,
lineage), payments, overdue, write-off and disputes (ARCHITECTURE.md, "Lifecycles").

Every transition locks the receivable's row (``SELECT … FOR UPDATE``), checks the current state
under that lock, refuses an invalid one with :class:`InvalidTransition` (409, the current states
in the problem document) and writes its event through :func:`service.record_event` (the outbox,
anchored by the ledger). Unseen receivables are 404; a party whose role may not make this
transition is 403.

Value moves, never appears or vanishes: for every receivable
``open + paid + diluted + moved = face value`` (a CHECK constraint), and a split or transfer moves
the whole open amount of a parent into parts whose face values sum to it exactly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit import ids
from qilian.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from qilian.kit.money import Money, MoneyError
from services.api.audit import service as audit
from services.api.auth.models import Principal
from services.api.organizations.models import Organization, Role
from services.api.receivables import repository, service, signatures
from services.api.receivables.models import (
    Confirmation,
    Dispute,
    DisputeStatus,
    Financing,
    Holding,
    PaymentKind,
    Receivable,
    ReceivableDispute,
    ReceivablePayment,
    Settlement,
)
from services.api.receivables.settings import ReceivableSettings

UNSETTLED: Final = frozenset({Settlement.open, Settlement.partially_paid, Settlement.overdue})
DomainSource = Callable[[], Awaitable[signatures.Domain]]


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Not possible in the receivable's current state"


class SignatureRequired(InvalidInput):
    slug, title = "signature-required", "The core firm confirms with its EIP-712 signature"


class SignatureRefused(InvalidInput):
    slug, title = "signature-refused", "The signature is not the core firm's over this receivable"


def states(receivable: Receivable) -> dict[str, str]:
    return {
        "confirmation": receivable.confirmation,
        "holding": receivable.holding,
        "financing": receivable.financing,
        "settlement": receivable.settlement,
        "dispute": receivable.dispute,
    }


def refuse(receivable: Receivable, detail: str, reason: str) -> InvalidTransition:
    return InvalidTransition(
        detail,
        extra={"reason": reason, "receivable_id": receivable.id, "states": states(receivable)},
    )


async def _locked(session: AsyncSession, principal: Principal, receivable_id: str) -> Receivable:
    """The receivable's row under its lock, if the caller is a party; 404 otherwise."""
    row = await repository.lock(session, receivable_id)
    if row is None or not service.is_party(row, principal.organization_id):
        raise NotFound(f"there is no receivable {receivable_id}")
    return row


def _actor(principal: Principal) -> str:
    """An event's actor: the organisation (the audit log names the client or person)."""
    return principal.organization_id


async def _audit(
    session: AsyncSession, principal: Principal, action: str, receivable_id: str, **details: Any
) -> None:
    """One audit entry per request, after its row locks (the audit chain's lock comes last)."""
    await audit.append(
        session,
        principal,
        f"receivable.{action}",
        object_type="receivable",
        object_id=receivable_id,
        details=details or None,
    )


def _money(amount: Any, currency: str, what: str) -> Money:
    try:
        money = Money.of(amount, currency)
    except MoneyError as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    if not money.is_positive():
        raise InvalidInput(f"{what} must be positive")
    return money


# ---------------------------------------------------------------- confirmation


def _require_pending_for_debtor(row: Receivable, principal: Principal) -> None:
    if row.debtor_id != principal.organization_id:
        raise Forbidden("only the debtor core firm confirms or rejects its payables")
    if row.confirmation != Confirmation.pending:
        raise refuse(row, f"the receivable is already {row.confirmation}", "not_pending")


async def confirm(
    session: AsyncSession,
    principal: Principal,
    receivable_id: str,
    signature: str | None,
    domain: DomainSource,
    *,
    audited: bool = True,
) -> Receivable:
    """``pending`` → ``confirmed`` by the debtor; with its EIP-712 signature when it registered
    a signing address (signature, signer and typed data go into the anchored event)."""
    row = await _locked(session, principal, receivable_id)
    _require_pending_for_debtor(row, principal)
    debtor = await session.get(Organization, row.debtor_id)
    data: dict[str, Any] = {"open_amount": service.open_amount(row).to_json()}
    if debtor is not None and debtor.signing_address:
        if not signature:
            raise SignatureRequired(
                "this core firm registered a signing address: sign the typed data of "
                f"GET /v1/receivables/{row.id}/confirmation-message",
                extra={"reason": "signature_required"},
            )
        typed = signatures.typed_data(row, await domain())
        try:
            signer = signatures.recover(typed, signature)
        except signatures.InvalidSignature as exc:
            raise SignatureRefused(str(exc), extra={"reason": "signature_invalid"}) from None
        if signer.lower() != debtor.signing_address.lower():
            raise SignatureRefused(
                "the signature was not made by the core firm's registered signing address",
                extra={"reason": "signature_mismatch"},
            )
        data.update(signature=signature, signer=signer, eip712=typed)

    def change(r: Receivable) -> None:
        r.confirmation = Confirmation.confirmed.value

    updated, event = await service.record_event(
        session, row.id, "confirmed", _actor(principal), data, change
    )
    if audited:
        await _audit(session, principal, "confirmed", row.id, event_id=event.event_id)
    return updated


async def reject(
    session: AsyncSession, principal: Principal, receivable_id: str, reason: str
) -> Receivable:
    row = await _locked(session, principal, receivable_id)
    _require_pending_for_debtor(row, principal)

    def change(r: Receivable) -> None:
        r.confirmation = Confirmation.rejected.value

    updated, _ = await service.record_event(
        session, row.id, "rejected", _actor(principal), {"reason": reason}, change
    )
    await _audit(session, principal, "rejected", row.id)
    return updated


async def cancel(
    session: AsyncSession, principal: Principal, receivable_id: str, reason: str
) -> Receivable:
    """``pending`` → ``cancelled`` by the supplier that uploaded it (and still holds it): an
    invoice sent by mistake is withdrawn before the core firm confirms it."""
    row = await _locked(session, principal, receivable_id)
    if principal.organization_id not in (row.creditor_id, row.holder_id) or (
        row.creditor_id != row.holder_id
    ):
        raise Forbidden("only the supplier that uploaded and holds a receivable cancels it")
    if row.confirmation != Confirmation.pending:
        raise refuse(row, f"the receivable is already {row.confirmation}", "not_pending")

    def change(r: Receivable) -> None:
        r.confirmation = Confirmation.cancelled.value

    updated, _ = await service.record_event(
        session, row.id, "cancelled", _actor(principal), {"reason": reason}, change
    )
    await _audit(session, principal, "cancelled", row.id)
    return updated


@dataclass(frozen=True)
class BulkOutcome:
    receivable_id: str
    status: int
    receivable: Receivable | None = None
    problem: dict[str, Any] | None = None


async def pending_queue(session: AsyncSession, debtor_id: str, limit: int) -> list[str]:
    result = await session.execute(
        select(col(Receivable.id))
        .where(
            col(Receivable.debtor_id) == debtor_id,
            col(Receivable.confirmation) == Confirmation.pending.value,
        )
        .order_by(col(Receivable.due_date), col(Receivable.id))
        .limit(limit)
    )
    return list(result.scalars().all())


async def bulk_confirm(
    session: AsyncSession,
    principal: Principal,
    items: Sequence[tuple[str, str | None]],
    domain: DomainSource,
) -> list[BulkOutcome]:
    """Confirm each item in its own savepoint: one refusal never undoes the others. Rows are
    locked in id order (two overlapping bulk requests never deadlock); the outcomes come back in
    the order of ``items``."""
    done: dict[int, BulkOutcome] = {}
    for index in sorted(range(len(items)), key=lambda i: items[i][0]):
        receivable_id, signature = items[index]
        try:
            async with session.begin_nested():
                row = await confirm(
                    session, principal, receivable_id, signature, domain, audited=False
                )
            done[index] = BulkOutcome(receivable_id, 200, receivable=row)
        except (InvalidInput, Conflict, NotFound, Forbidden) as exc:
            problem = exc.to_problem(f"/v1/receivables/{receivable_id}/confirm")
            done[index] = BulkOutcome(receivable_id, exc.status, problem=problem)
    outcomes = [done[i] for i in range(len(items))]
    confirmed = [o.receivable_id for o in outcomes if o.status == 200]
    if confirmed:
        await audit.append(
            session,
            principal,
            "receivable.bulk_confirmed",
            object_type="receivable",
            details={"confirmed": confirmed, "refused": len(outcomes) - len(confirmed)},
        )
    return outcomes


# ---------------------------------------------------------------- vouchers


def financeable(receivable: Receivable) -> bool:
    """Whether a financing request may include it (the hook for the financing issue): confirmed,
    still held (not split or transferred away), unfinanced, no open dispute, unsettled money."""
    return (
        receivable.confirmation == Confirmation.confirmed
        and receivable.holding == Holding.held
        and receivable.financing == Financing.unfinanced
        and receivable.dispute != Dispute.open
        and receivable.settlement in (Settlement.open, Settlement.partially_paid)
        and receivable.open_amount_minor > 0
    )


def _require_movable(row: Receivable, principal: Principal, what: str) -> None:
    """The holder may split or transfer only a held, confirmed, unfinanced, undisputed, unpaid
    receivable (``what``: "split" or "transferred")."""
    if row.holder_id != principal.organization_id:
        verb = "transfer" if what == "transferred" else what
        raise Forbidden(f"only the holder may {verb} a receivable")
    if row.holding != Holding.held:
        raise refuse(row, f"the receivable was already {row.holding}", "not_held")
    if row.confirmation != Confirmation.confirmed:
        raise refuse(row, f"only a confirmed receivable can be {what}", "not_confirmed")
    if row.dispute == Dispute.open:
        raise refuse(row, "an open dispute freezes the receivable", "disputed")
    if row.financing != Financing.unfinanced:
        raise refuse(row, f"a receivable {row.financing} cannot be {what}", "financed")
    if row.settlement not in (Settlement.open, Settlement.partially_paid):
        raise refuse(row, f"a receivable {row.settlement} cannot be {what}", "settled")
    if row.open_amount_minor <= 0:
        raise refuse(row, "nothing is open", "nothing_open")


def _child(parent: Receivable, amount: Money, holder_id: str, via: str) -> Receivable:
    transfer = via == "transfer"
    return Receivable(
        id=ids.new_id("rcv"),
        invoice_id=parent.invoice_id,
        parent_id=parent.id,
        root_id=parent.root_id or parent.id,
        tier=parent.tier + 1 if transfer else parent.tier,
        depth=parent.depth + 1,
        holding=Holding.held.value,
        creditor_id=parent.holder_id if transfer else parent.creditor_id,
        holder_id=holder_id,
        debtor_id=parent.debtor_id,
        currency=parent.currency,
        face_value_minor=amount.minor,
        open_amount_minor=amount.minor,
        issue_date=parent.issue_date,
        due_date=parent.due_date,
        due_date_source=parent.due_date_source,
        confirmation=Confirmation.confirmed.value,
        financing=Financing.unfinanced.value,
        settlement=Settlement.open.value,
        dispute=Dispute.none.value,
        event_seq=1,
    )


async def _create_child(session: AsyncSession, child: Receivable, actor: str, via: str) -> None:
    await repository.add(session, child)
    data = {
        "invoice_id": child.invoice_id,
        "parent_id": child.parent_id,
        "root_id": child.root_id,
        "via": via,
        "creditor": child.creditor_id,
        "holder": child.holder_id,
        "debtor": child.debtor_id,
        "face_value": service.face_value(child).to_json(),
        "issue_date": child.issue_date.isoformat(),
        "due_date": child.due_date.isoformat(),
        "tier": child.tier,
        "depth": child.depth,
    }
    await service.append_event(session, child, "created", actor, data)


def _move_all(holding: Holding) -> Callable[[Receivable], None]:
    def change(r: Receivable) -> None:
        r.moved_minor += r.open_amount_minor
        r.open_amount_minor = 0
        r.holding = holding.value

    return change


async def _split_locked(
    session: AsyncSession,
    principal: Principal,
    row: Receivable,
    parts: Sequence[Money],
    config: ReceivableSettings,
) -> list[Receivable]:
    if len(parts) < 2:
        raise InvalidInput("a split has at least two parts")
    if len(parts) > config.max_parts:
        raise InvalidInput(f"a split has at most {config.max_parts} parts")
    if row.depth + 1 > config.max_depth:
        raise refuse(row, f"parts may be at most {config.max_depth} levels deep", "too_deep")
    minimum = Money(config.min_part_minor, row.currency)
    if any(part < minimum for part in parts):
        raise InvalidInput(f"every part must be at least {minimum}")
    total = sum(p.minor for p in parts)
    if total != row.open_amount_minor:
        raise InvalidInput(
            f"the parts sum to {Money(total, row.currency)}, the open amount is "
            f"{service.open_amount(row)}; they must be equal",
            extra={"reason": "parts_do_not_sum"},
        )
    children = [_child(row, part, row.holder_id, "split") for part in parts]
    actor = _actor(principal)
    data = {
        "open_amount": service.open_amount(row).to_json(),
        "parts": [
            {"receivable_id": c.id, "amount": service.face_value(c).to_json()} for c in children
        ],
    }
    await service.record_event(session, row.id, "split", actor, data, _move_all(Holding.split_up))
    for child in children:
        await _create_child(session, child, actor, "split")
    return children


async def split(
    session: AsyncSession,
    principal: Principal,
    receivable_id: str,
    amounts: Sequence[Any],
    config: ReceivableSettings,
) -> list[Receivable]:
    """The holder splits the whole open amount into parts (new confirmed receivables it holds)."""
    row = await _locked(session, principal, receivable_id)
    _require_movable(row, principal, "split")
    parts = [_money(a, row.currency, "a part's amount") for a in amounts]
    children = await _split_locked(session, principal, row, parts, config)
    await _audit(session, principal, "split", row.id, parts=[c.id for c in children])
    return children


@dataclass(frozen=True)
class TransferOutcome:
    transferred: Receivable  # the new part, held by the receiving supplier
    remainder: Receivable | None  # the part the holder keeps (a partial transfer)


async def transfer(
    session: AsyncSession,
    principal: Principal,
    receivable_id: str,
    to_organization_id: str,
    amount: Any | None,
    config: ReceivableSettings,
) -> TransferOutcome:
    """The holder passes the receivable (or, splitting first, a part of it) to another supplier:
    the parent becomes ``transferred`` and a new part (tier + 1) is held by the receiver."""
    row = await _locked(session, principal, receivable_id)
    _require_movable(row, principal, "transferred")
    receiver = await session.get(Organization, to_organization_id)
    if receiver is None or Role(receiver.role) != Role.supplier:
        raise InvalidInput("a receivable is transferred to another supplier organisation")
    if receiver.id == row.holder_id:
        raise InvalidInput("the receivable is already held by this organisation")
    remainder = None
    source = row
    if amount is not None:
        money = _money(amount, row.currency, "the amount")
        if money.minor > row.open_amount_minor:
            raise InvalidInput(
                f"the amount exceeds the open amount ({service.open_amount(row)})",
                extra={"reason": "amount_exceeds_open_amount"},
            )
        if money.minor < row.open_amount_minor:
            rest = Money(row.open_amount_minor - money.minor, row.currency)
            if row.depth + 2 > config.max_depth:
                raise refuse(
                    row, f"parts may be at most {config.max_depth} levels deep", "too_deep"
                )
            source, remainder = await _split_locked(session, principal, row, [money, rest], config)
    if source.depth + 1 > config.max_depth:
        raise refuse(source, f"parts may be at most {config.max_depth} levels deep", "too_deep")
    child = _child(source, service.open_amount(source), receiver.id, "transfer")
    actor = _actor(principal)
    data = {
        "from": source.holder_id,
        "to": receiver.id,
        "amount": service.open_amount(source).to_json(),
        "receivable_id": child.id,
    }
    await service.record_event(
        session, source.id, "transferred", actor, data, _move_all(Holding.transferred)
    )
    await _create_child(session, child, actor, "transfer")
    await _audit(session, principal, "transferred", row.id, to=receiver.id, part=child.id)
    return TransferOutcome(child, remainder)


@dataclass(frozen=True)
class LineageNode:
    receivable: Receivable
    visible: bool  # False: an ancestor the caller is not a party to (shown without details)


async def lineage(
    session: AsyncSession, principal: Principal, receivable_id: str
) -> tuple[str, list[LineageNode]]:
    """The tree the receivable belongs to. The debtor (core firm) sees every part (穿透); any
    other party sees the parts it is a party to and, without details, their ancestors."""
    row = await service.get_visible(session, principal, receivable_id)
    root_id = row.root_id or row.id
    nodes = await repository.tree(session, root_id)
    org = principal.organization_id
    if row.debtor_id == org:
        return root_id, [LineageNode(n, True) for n in nodes]
    by_id = {n.id: n for n in nodes}
    shown: dict[str, bool] = {}
    for node in nodes:
        if service.is_party(node, org):
            shown[node.id] = True
            parent = node.parent_id
            while parent is not None and parent not in shown:
                shown[parent] = False
                parent = by_id[parent].parent_id
    return root_id, [LineageNode(n, shown[n.id]) for n in nodes if n.id in shown]


# ---------------------------------------------------------------- payments


async def payee_of(session: AsyncSession, receivable: Receivable) -> tuple[str, str]:
    """Who a payment on the receivable is owed to: ``(organization_id, "financier"|"holder")``.
    Factoring is disclosed: once financed, the debtor pays the financier."""
    if receivable.financing == Financing.financed and receivable.financier_id is not None:
        return receivable.financier_id, "financier"
    return receivable.holder_id, "holder"


async def record_payment(
    session: AsyncSession,
    principal: Principal,
    receivable_id: str,
    amount: Any,
    paid_at: date,
    reference: str,
    final: bool,
) -> tuple[Receivable, ReceivablePayment]:
    """The debtor's payment, applied to the open amount; an excess is kept unapplied (to be
    refunded), a final short payment leaves the rest owed. Nothing is ever dropped."""
    row = await _locked(session, principal, receivable_id)
    if row.debtor_id != principal.organization_id:
        raise Forbidden("only the debtor records its payments")
    if row.confirmation != Confirmation.confirmed:
        raise refuse(row, "only a confirmed receivable is paid", "not_confirmed")
    if row.holding != Holding.held:
        raise refuse(row, f"the receivable was {row.holding}: pay its parts", "not_held")
    if row.settlement not in UNSETTLED:
        raise refuse(row, f"the receivable is {row.settlement}", "settled")
    if row.financing == Financing.in_auction:
        raise refuse(row, "a receivable in an auction is not paid until it ends", "in_auction")
    money = _money(amount, row.currency, "the payment")
    open_before = row.open_amount_minor
    applied = min(money.minor, open_before)
    unapplied = money.minor - applied
    after = open_before - applied
    if unapplied > 0:
        kind = PaymentKind.over
    elif after == 0:
        kind = PaymentKind.full
    else:
        kind = PaymentKind.short if final else PaymentKind.partial
    payee, owed_to = await payee_of(session, row)
    payment_id = ids.new_id("pay")
    cur = row.currency
    data = {
        "payment_id": payment_id,
        "amount": money.to_json(),
        "applied": Money(applied, cur).to_json(),
        "unapplied": Money(unapplied, cur).to_json(),
        "kind": kind.value,
        "paid_at": paid_at.isoformat(),
        "reference": reference,
        "payee": payee,
        "owed_to": owed_to,
        "open_amount_before": Money(open_before, cur).to_json(),
        "open_amount_after": Money(after, cur).to_json(),
    }
    if kind == PaymentKind.short:
        data["short_by"] = Money(after, cur).to_json()

    def change(r: Receivable) -> None:
        r.open_amount_minor = after
        r.paid_minor += applied
        if after == 0:
            r.settlement = Settlement.paid.value
        elif r.settlement == Settlement.open:
            r.settlement = Settlement.partially_paid.value

    updated, event = await service.record_event(
        session, row.id, "payment_recorded", _actor(principal), data, change
    )
    payment = ReceivablePayment(
        id=payment_id,
        receivable_id=row.id,
        payer_id=principal.organization_id,
        payee_id=payee,
        currency=cur,
        amount_minor=money.minor,
        applied_minor=applied,
        unapplied_minor=unapplied,
        kind=kind.value,
        paid_at=paid_at,
        reference=reference,
        event_id=event.event_id,
    )
    await repository.add(session, payment)
    await _audit(session, principal, "payment_recorded", row.id, payment_id=payment_id)
    return updated, payment


async def payments(
    session: AsyncSession, principal: Principal, receivable_id: str
) -> Sequence[ReceivablePayment]:
    row = await service.get_visible(session, principal, receivable_id)
    return await repository.payments(session, row.id)


async def write_off(
    session: AsyncSession, principal: Principal, receivable_id: str, reason: str
) -> Receivable:
    """The holder (or, when financed, the financier) writes off what is still open."""
    row = await repository.lock(session, receivable_id)
    if row is None:
        raise NotFound(f"there is no receivable {receivable_id}")
    payee, _ = await payee_of(session, row)
    if principal.organization_id != payee:
        if not service.is_party(row, principal.organization_id):
            raise NotFound(f"there is no receivable {receivable_id}")
        raise Forbidden("only the holder, or the financier of a financed receivable, writes off")
    if row.holding != Holding.held:
        raise refuse(row, f"the receivable was {row.holding}", "not_held")
    if row.settlement not in UNSETTLED:
        raise refuse(row, f"the receivable is {row.settlement}", "settled")
    if row.financing == Financing.in_auction:
        raise refuse(row, "a receivable in an auction cannot be written off", "in_auction")
    data = {"reason": reason, "written_off": service.open_amount(row).to_json()}

    def change(r: Receivable) -> None:
        r.settlement = Settlement.written_off.value

    updated, _ = await service.record_event(
        session, row.id, "written_off", _actor(principal), data, change
    )
    await _audit(session, principal, "written_off", row.id)
    return updated


async def mark_overdue(
    session: AsyncSession, today: date, grace_days: int, limit: int = 500
) -> list[str]:
    """Mark confirmed, held, unsettled receivables overdue once ``due_date + grace`` has passed.
    Each is re-checked under its lock, so running twice (or concurrently) marks each once."""
    cutoff = today - timedelta(days=grace_days)
    marked = []
    for receivable_id in await repository.overdue_candidates(session, cutoff, limit):
        row = await repository.lock(session, receivable_id)
        if (
            row is None
            or row.settlement not in (Settlement.open, Settlement.partially_paid)
            or row.holding != Holding.held
            or row.confirmation != Confirmation.confirmed
            or row.due_date >= cutoff
        ):
            continue
        data = {
            "due_date": row.due_date.isoformat(),
            "grace_days": grace_days,
            "as_of": today.isoformat(),
            "open_amount": service.open_amount(row).to_json(),
        }

        def change(r: Receivable) -> None:
            r.settlement = Settlement.overdue.value

        await service.record_event(session, row.id, "overdue", "system", data, change)
        marked.append(row.id)
    return marked


# ---------------------------------------------------------------- disputes


async def open_dispute(
    session: AsyncSession, principal: Principal, receivable_id: str, reason: str
) -> tuple[Receivable, ReceivableDispute]:
    """The debtor or the holder opens a dispute: it freezes split, transfer and financing."""
    row = await _locked(session, principal, receivable_id)
    org = principal.organization_id
    if org not in (row.debtor_id, row.holder_id):
        raise Forbidden("only the debtor or the holder opens a dispute")
    if row.holding != Holding.held:
        raise refuse(row, f"the receivable was {row.holding}: dispute its parts", "not_held")
    if row.dispute == Dispute.open:
        raise refuse(row, "a dispute is already open", "already_disputed")
    if row.confirmation in (Confirmation.rejected, Confirmation.cancelled):
        raise refuse(row, f"the receivable is {row.confirmation}", "closed")
    if row.settlement in (Settlement.paid, Settlement.written_off):
        raise refuse(row, f"the receivable is {row.settlement}", "settled")
    dispute = ReceivableDispute(
        id=ids.new_id("dsp"),
        receivable_id=row.id,
        opened_by=org,
        reason=reason,
        status=DisputeStatus.open.value,
        opened_at=datetime.now(UTC),
    )

    def change(r: Receivable) -> None:
        r.dispute = Dispute.open.value

    data = {"dispute_id": dispute.id, "opened_by": org, "reason": reason}
    updated, _ = await service.record_event(
        session, row.id, "dispute_opened", _actor(principal), data, change
    )
    await repository.add(session, dispute)
    await _audit(session, principal, "dispute_opened", row.id, dispute_id=dispute.id)
    return updated, dispute


async def resolve_dispute(
    session: AsyncSession, principal: Principal, dispute_id: str, resolution: str
) -> tuple[Receivable, ReceivableDispute]:
    found = await repository.dispute(session, dispute_id)
    if found is None:
        raise NotFound(f"there is no dispute {dispute_id}")
    row = await _locked(session, principal, found.receivable_id)
    org = principal.organization_id
    if org not in (row.debtor_id, row.holder_id):
        raise Forbidden("only the debtor or the holder resolves a dispute")
    dispute = await repository.dispute(session, dispute_id, refresh=True)
    assert dispute is not None
    if dispute.status != DisputeStatus.open:
        raise refuse(row, "the dispute is already resolved", "dispute_resolved")
    dispute.status = DisputeStatus.resolved.value
    dispute.resolution = resolution
    dispute.resolved_by = org
    dispute.resolved_at = datetime.now(UTC)
    session.add(dispute)

    def change(r: Receivable) -> None:
        r.dispute = Dispute.resolved.value

    data = {"dispute_id": dispute.id, "resolved_by": org, "resolution": resolution}
    updated, _ = await service.record_event(
        session, row.id, "dispute_resolved", _actor(principal), data, change
    )
    await _audit(session, principal, "dispute_resolved", row.id, dispute_id=dispute.id)
    return updated, dispute


async def disputes(
    session: AsyncSession, principal: Principal, receivable_id: str
) -> Sequence[ReceivableDispute]:
    row = await service.get_visible(session, principal, receivable_id)
    return await repository.disputes(session, row.id)
