"""The marketplace's rules: requests (auctions), sealed offers, exactly-once acceptance, the
registry saga, funding, repayment, default, and the timers that close what is due.

Locks are always taken in the same order — request, offers, financing, receivables (by id) — and
every check happens under them, so concurrent requests serialise where they must and never
deadlock. Acceptance is exactly once because it holds the request's row lock while it checks
``open``; the partial UNIQUE indexes (one accepted offer per request, one live request per
receivable, one financing per request and per offer) make a second winner impossible even for
code that forgot the lock. The chain is the third guard: the acceptance registers every
receivable in ``FinancingRegistry`` (through the ledger, as a saga over the outbox), and a
refusal there rolls the financing back (ARCHITECTURE.md, rule 1; docs/financing.md).

A bank sees requests open for bids and its own offers, never another bank's: not in a list, a
count, an error or a webhook (rule 4). An offer or financing it cannot see is 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit import ids, outbox
from qilian.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from qilian.kit.money import Money, MoneyError
from services.api.audit import service as audit
from services.api.auth.models import Principal
from services.api.financing import notify, pricing
from services.api.financing.models import (
    FinancingRecord,
    FinancingRequest,
    FinancingRequestItem,
    FinancingState,
    Offer,
    OfferState,
    Recourse,
    RegistryAction,
    RegistryOperation,
    ReleaseReason,
    RequestState,
)
from services.api.financing.settings import FinancingSettings, get_financing_settings
from services.api.invoices.models import Invoice
from services.api.organizations.models import Role
from services.api.receivables import lifecycle, repository
from services.api.receivables import service as receivables
from services.api.receivables.models import (
    Confirmation,
    Dispute,
    Financing,
    Holding,
    Receivable,
    ReceivablePayment,
    Settlement,
)
from services.api.risk import service as risk  # risk sharing: cover and claims hooks

log = structlog.get_logger(__name__)

REGISTRY_TOPIC: Final = "financing.registry"
SYSTEM_ACTOR: Final = "qilian"
_FINANCEABLE_SETTLEMENT: Final = (Settlement.open.value, Settlement.partially_paid.value)


class RequestClosed(Conflict):
    slug, title = "request-closed", "The financing request no longer takes this action"


class OfferNotActive(Conflict):
    slug, title = "offer-not-active", "The offer is no longer active"


class NotEligible(Conflict):
    slug, title = "not-eligible", "A receivable cannot be financed in its current state"


class AlreadyFinanced(Conflict):
    slug, title = "already-financed", "The invoice is financed already"


class FinancingStateConflict(Conflict):
    slug, title = "financing-state", "Not possible in the financing's current state"


def now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return now().date()


def field_error(field: str, message: str, where: str = "body") -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "in": where, "message": message}])


# ---------------------------------------------------------------- reading


Locked = TypeVar("Locked", FinancingRequest, Offer, FinancingRecord)


async def _lock(session: AsyncSession, model: type[Locked], key: str) -> Locked | None:
    """The row under its lock until the transaction ends (``SELECT … FOR UPDATE``), fresh."""
    result = await session.execute(
        select(model)
        .where(col(model.id) == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def _lock_request(session: AsyncSession, request_id: str) -> FinancingRequest | None:
    return await _lock(session, FinancingRequest, request_id)


async def _lock_offer(session: AsyncSession, offer_id: str) -> Offer | None:
    return await _lock(session, Offer, offer_id)


async def _lock_financing(session: AsyncSession, financing_id: str) -> FinancingRecord | None:
    return await _lock(session, FinancingRecord, financing_id)


async def items_of_many(
    session: AsyncSession, request_ids: Sequence[str]
) -> dict[str, list[FinancingRequestItem]]:
    """The items of several requests in one query, by request, each in receivable order."""
    result = await session.execute(
        select(FinancingRequestItem)
        .where(col(FinancingRequestItem.request_id).in_(request_ids))
        .order_by(col(FinancingRequestItem.receivable_id))
    )
    by_request: dict[str, list[FinancingRequestItem]] = {r: [] for r in request_ids}
    for item in result.scalars():
        by_request[item.request_id].append(item)
    return by_request


async def items_of(session: AsyncSession, request_id: str) -> list[FinancingRequestItem]:
    result = await session.execute(
        select(FinancingRequestItem)
        .where(col(FinancingRequestItem.request_id) == request_id)
        .order_by(col(FinancingRequestItem.receivable_id))
    )
    return list(result.scalars())


async def _has_offer(session: AsyncSession, request_id: str, bank_id: str) -> bool:
    found = await session.execute(
        select(col(Offer.id))
        .where(col(Offer.request_id) == request_id, col(Offer.bank_id) == bank_id)
        .limit(1)
    )
    return found.first() is not None


def is_open(request: FinancingRequest, at: datetime | None = None) -> bool:
    return request.state == RequestState.open and request.closes_at > (at or now())


async def can_see_request(
    session: AsyncSession, principal: Principal, request: FinancingRequest
) -> bool:
    """The requester always; a bank while the request takes bids, or once it has bid on it."""
    org = principal.organization_id
    if request.requester_id == org:
        return True
    if principal.role == Role.bank:
        return is_open(request) or await _has_offer(session, request.id, org)
    return False


async def get_request(
    session: AsyncSession, principal: Principal, request_id: str
) -> FinancingRequest:
    request = await session.get(FinancingRequest, request_id)
    if request is None or not await can_see_request(session, principal, request):
        raise NotFound(f"there is no financing request {request_id}")
    return request


def list_requests_query(principal: Principal, state: RequestState | None) -> Any:
    """The requester's own requests; for a bank, the requests open for bids (and, with
    ``state``, those in that state it bid on)."""
    query = select(FinancingRequest)
    if principal.role == Role.bank:
        if state is None or state == RequestState.open:
            return query.where(
                col(FinancingRequest.state) == RequestState.open.value,
                col(FinancingRequest.closes_at) > now(),
            )
        mine = select(col(Offer.request_id)).where(col(Offer.bank_id) == principal.organization_id)
        return query.where(
            col(FinancingRequest.state) == state.value, col(FinancingRequest.id).in_(mine)
        )
    query = query.where(col(FinancingRequest.requester_id) == principal.organization_id)
    if state is not None:
        query = query.where(col(FinancingRequest.state) == state.value)
    return query


async def get_offer(session: AsyncSession, principal: Principal, offer_id: str) -> Offer:
    """The bidding bank's own offer, or any offer on the caller's own request; else 404."""
    offer = await session.get(Offer, offer_id)
    if offer is not None:
        if offer.bank_id == principal.organization_id:
            return offer
        request = await session.get(FinancingRequest, offer.request_id)
        if request is not None and request.requester_id == principal.organization_id:
            return offer
    raise NotFound(f"there is no offer {offer_id}")


async def offers_for(
    session: AsyncSession, principal: Principal, request: FinancingRequest
) -> list[Offer]:
    """Every offer on the request for its requester; only its own for a bank."""
    query = select(Offer).where(col(Offer.request_id) == request.id)
    if request.requester_id != principal.organization_id:
        query = query.where(col(Offer.bank_id) == principal.organization_id)
    result = await session.execute(query.order_by(col(Offer.created_at), col(Offer.id)))
    return list(result.scalars())


def list_offers_query(principal: Principal, state: OfferState | None) -> Any:
    """A bank's own offers across requests; a supplier's: the offers on its requests."""
    if principal.role == Role.bank:
        query = select(Offer).where(col(Offer.bank_id) == principal.organization_id)
    else:
        own = select(col(FinancingRequest.id)).where(
            col(FinancingRequest.requester_id) == principal.organization_id
        )
        query = select(Offer).where(col(Offer.request_id).in_(own))
    if state is not None:
        query = query.where(col(Offer.state) == state.value)
    return query


def can_see_financing(principal: Principal, financing: FinancingRecord) -> bool:
    org = principal.organization_id
    return org in (financing.bank_id, financing.supplier_id, financing.debtor_id)


async def get_financing(
    session: AsyncSession, principal: Principal, financing_id: str
) -> FinancingRecord:
    financing = await session.get(FinancingRecord, financing_id)
    if financing is None or not (
        can_see_financing(principal, financing)
        or await risk.guarantees(session, principal.organization_id, financing.id)  # its cover
    ):
        raise NotFound(f"there is no financing {financing_id}")
    return financing


def list_financings_query(principal: Principal, state: FinancingState | None) -> Any:
    org = principal.organization_id
    query = select(FinancingRecord).where(
        (col(FinancingRecord.bank_id) == org)
        | (col(FinancingRecord.supplier_id) == org)
        | (col(FinancingRecord.debtor_id) == org)
        | col(FinancingRecord.id).in_(risk.covered_by(org))  # a guarantor: what it covers
    )
    if state is not None:
        query = query.where(col(FinancingRecord.state) == state.value)
    return query


# ---------------------------------------------------------------- ranking


@dataclass(frozen=True)
class RankedOffer:
    offer: Offer
    quote: pricing.Quote | None  # None when it cannot be priced today (due, or nothing paid out)
    rank: int | None  # 1 = best; only active offers are ranked


def terms_of(offer: Offer) -> pricing.Terms:
    return pricing.Terms(
        advance_rate=offer.advance_rate,
        annual_rate=offer.annual_rate,
        fee=Money(offer.fee_minor, offer.currency),
        day_count=pricing.DayCount(offer.day_count),
    )


def face_value(request: FinancingRequest) -> Money:
    return Money(request.face_value_minor, request.currency)


def rank(request: FinancingRequest, offers: Sequence[Offer], on: date) -> list[RankedOffer]:
    """Active offers first, by net proceeds (higher first), then effective annual rate (lower
    first), then time of bid; the others after them in time order, unranked."""
    priced: list[tuple[Offer, pricing.Quote | None]] = []
    for offer in offers:
        try:
            figures: pricing.Quote | None = pricing.quote(
                face_value(request), request.due_date, on, terms_of(offer)
            )
        except pricing.PricingError:
            figures = None
        priced.append((offer, figures))
    active = [(o, q) for o, q in priced if o.state == OfferState.active and q is not None]
    active.sort(
        key=lambda p: (
            -p[1].net_proceeds.minor,
            p[1].effective_annual_rate,
            p[0].created_at,
            p[0].id,
        )
    )
    ranked = [RankedOffer(o, q, i + 1) for i, (o, q) in enumerate(active)]
    seen = {r.offer.id for r in ranked}
    rest = [RankedOffer(o, q, None) for o, q in priced if o.id not in seen]
    return ranked + rest


# ---------------------------------------------------------------- requests


async def _lock_receivables(
    session: AsyncSession, receivable_ids: Iterable[str]
) -> list[Receivable]:
    rows = []
    for receivable_id in sorted(set(receivable_ids)):
        row = await repository.lock(session, receivable_id)
        if row is None:
            raise NotFound(f"there is no receivable {receivable_id}")
        rows.append(row)
    return rows


def _require_eligible(row: Receivable, requester_id: str) -> None:
    if not receivables.is_party(row, requester_id):
        raise NotFound(f"there is no receivable {row.id}")
    if row.holder_id != requester_id:
        raise Forbidden(f"only the holder may ask for the financing of {row.id}")
    reasons = [
        (row.confirmation != Confirmation.confirmed, "not_confirmed", "it is not confirmed"),
        (row.holding != Holding.held, "not_held", f"it was {row.holding}"),
        (row.dispute == Dispute.open, "disputed", "an open dispute freezes it"),
        (row.financing == Financing.in_auction, "in_auction", "it is in another auction"),
        (row.financing == Financing.financed, "financed", "it is financed already"),
        (row.settlement == Settlement.overdue, "overdue", "it is overdue"),
        (row.settlement not in _FINANCEABLE_SETTLEMENT, "settled", f"it is {row.settlement}"),
        (row.open_amount_minor <= 0, "nothing_open", "nothing is open"),
    ]
    for failed, reason, why in reasons:
        if failed:
            raise NotEligible(
                f"receivable {row.id} cannot be financed: {why}",
                extra={
                    "reason": reason,
                    "receivable_id": row.id,
                    "states": lifecycle.states(row),
                },
            )


def _check_window(closes_at: datetime, settings: FinancingSettings) -> None:
    if closes_at.tzinfo is None:
        raise field_error("closes_at", "closes_at needs a time zone (RFC 3339)")
    at = now()
    if closes_at < at + timedelta(seconds=settings.min_auction_seconds):
        raise field_error(
            "closes_at",
            f"the auction must stay open at least {settings.min_auction_seconds} seconds",
        )
    if closes_at > at + timedelta(days=settings.max_auction_days):
        raise field_error(
            "closes_at", f"the auction may stay open at most {settings.max_auction_days} days"
        )


async def create_request(
    session: AsyncSession,
    principal: Principal,
    receivable_ids: Sequence[str],
    closes_at: datetime,
    min_advance_rate: Decimal | None,
    recourse: Recourse,
    settings: FinancingSettings,
    programme_id: str | None = None,
) -> tuple[FinancingRequest, list[FinancingRequestItem]]:
    if not receivable_ids:
        raise field_error("receivable_ids", "at least one receivable")
    if len(set(receivable_ids)) != len(receivable_ids):
        raise field_error("receivable_ids", "a receivable appears twice")
    if len(receivable_ids) > settings.max_receivables:
        raise field_error("receivable_ids", f"at most {settings.max_receivables} receivables")
    _check_window(closes_at, settings)
    rows = await _lock_receivables(session, receivable_ids)
    for row in rows:
        _require_eligible(row, principal.organization_id)
    first = rows[0]
    for row in rows[1:]:
        for attribute in ("currency", "debtor_id", "due_date"):
            if getattr(row, attribute) != getattr(first, attribute):
                raise field_error(
                    "receivable_ids",
                    "the receivables of one request share their debtor, currency and due date "
                    f"({row.id} differs from {first.id} in {attribute})",
                )
    earliest_due = closes_at.astimezone(UTC).date() + timedelta(days=settings.min_days_after_close)
    if first.due_date < earliest_due:
        raise field_error(
            "closes_at",
            f"the receivables fall due on {first.due_date.isoformat()}: the auction must close "
            f"at least {settings.min_days_after_close} days before",
        )
    request = FinancingRequest(
        id=ids.new_id("frq"),
        requester_id=principal.organization_id,
        debtor_id=first.debtor_id,
        currency=first.currency,
        face_value_minor=sum(r.open_amount_minor for r in rows),
        due_date=first.due_date,
        closes_at=closes_at.astimezone(UTC),
        min_advance_rate=min_advance_rate,
        recourse=recourse.value,
        state=RequestState.open.value,
    )
    session.add(request)
    await session.flush()
    items = [
        FinancingRequestItem(
            request_id=request.id, receivable_id=r.id, amount_minor=r.open_amount_minor
        )
        for r in rows
    ]
    session.add_all(items)
    await session.flush()
    if programme_id is not None:  # risk sharing: the request asks for a programme's cover
        await risk.ask_cover(session, request, programme_id)
    for row in rows:
        await _receivable_event(
            session,
            row.id,
            "financing_requested",
            principal.organization_id,
            {"request_id": request.id, "closes_at": request.closes_at.isoformat()},
            financing=Financing.in_auction,
        )
    await audit.append(
        session,
        principal,
        "financing_request.created",
        object_type="financing_request",
        object_id=request.id,
        details={"receivable_ids": [r.id for r in rows]},
    )
    await notify.to_banks(session, "financing_request.opened", {"request_id": request.id})
    return request, items


async def _receivable_event(
    session: AsyncSession,
    receivable_id: str,
    type_: str,
    actor: str,
    data: dict[str, Any],
    *,
    financing: Financing | None = None,
    financier_id: str | bool | None = False,
) -> Receivable:
    """Record a financing event on the receivable, changing its financing axis (and financier;
    ``False`` leaves it as it is)."""

    def change(row: Receivable) -> None:
        if financing is not None:
            row.financing = financing.value
        if financier_id is not False:
            row.financier_id = financier_id if isinstance(financier_id, str) else None

    row, _ = await receivables.record_event(session, receivable_id, type_, actor, data, change)
    return row


async def _end_items(session: AsyncSession, request_id: str) -> None:
    await session.execute(
        update(FinancingRequestItem)
        .where(col(FinancingRequestItem.request_id) == request_id)
        .values(live=False)
    )


async def _return_to_market(
    session: AsyncSession, request: FinancingRequest, type_: str, actor: str, data: dict[str, Any]
) -> None:
    """The request's receivables become unfinanced again (its items end)."""
    await _end_items(session, request.id)
    for item in await items_of(session, request.id):
        await _receivable_event(
            session,
            item.receivable_id,
            type_,
            actor,
            {"request_id": request.id, **data},
            financing=Financing.unfinanced,
            financier_id=None,
        )


async def _close_offers(
    session: AsyncSession, request_id: str, to: OfferState, *, but: str | None = None
) -> list[Offer]:
    """Every active offer of the request (but ``but``) moves to ``to``; returns them."""
    query = (
        select(Offer)
        .where(col(Offer.request_id) == request_id, col(Offer.state) == OfferState.active.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if but is not None:
        query = query.where(col(Offer.id) != but)
    closed = list((await session.execute(query)).scalars())
    for offer in closed:
        offer.state = to.value
        offer.updated_at = now()
        session.add(offer)
    return closed


async def cancel_request(
    session: AsyncSession, principal: Principal, request_id: str
) -> FinancingRequest:
    request = await _lock_request(session, request_id)
    if request is None or request.requester_id != principal.organization_id:
        if request is not None and await can_see_request(session, principal, request):
            raise Forbidden("only the requester cancels its request")
        raise NotFound(f"there is no financing request {request_id}")
    if request.state != RequestState.open:
        raise RequestClosed(f"the request is {request.state}", extra={"state": request.state})
    request.state = RequestState.cancelled.value
    request.state_reason = "cancelled by the requester"
    request.updated_at = now()
    session.add(request)
    closed = await _close_offers(session, request.id, OfferState.expired)
    await _return_to_market(
        session,
        request,
        "financing_request_ended",
        principal.organization_id,
        {"outcome": "cancelled"},
    )
    await audit.append(
        session,
        principal,
        "financing_request.cancelled",
        object_type="financing_request",
        object_id=request.id,
    )
    await notify.publish_each(
        session,
        "financing_request.cancelled",
        [(o.bank_id, {"request_id": request.id, "offer_id": o.id}) for o in closed],
    )
    return request


# ---------------------------------------------------------------- offers


@dataclass(frozen=True)
class OfferTerms:
    advance_rate: Decimal
    annual_rate: Decimal
    fee: Any  # {"amount", "currency"} validated here against the request's currency
    fee_currency: str
    day_count: pricing.DayCount
    recourse: bool
    expires_at: datetime | None


def _validate_terms(
    request: FinancingRequest, terms: OfferTerms, settings: FinancingSettings, at: datetime
) -> tuple[Money, datetime, pricing.Quote]:
    if not Decimal(0) < terms.advance_rate <= Decimal(1):
        raise field_error("advance_rate", "advance_rate must be above 0 and at most 1")
    if request.min_advance_rate is not None and terms.advance_rate < request.min_advance_rate:
        raise field_error(
            "advance_rate",
            f"the requester asks for an advance rate of at least {request.min_advance_rate}",
        )
    if not Decimal(0) <= terms.annual_rate <= settings.max_annual_rate:
        raise field_error(
            "annual_rate", f"annual_rate must be between 0 and {settings.max_annual_rate}"
        )
    if terms.fee_currency != request.currency:
        raise field_error("fee.currency", f"the fee must be in {request.currency}")
    try:
        fee = Money.of(terms.fee, request.currency)
    except MoneyError as exc:
        raise field_error("fee.amount", str(exc)) from None
    if fee.minor < 0:
        raise field_error("fee.amount", "the fee cannot be negative")
    if Decimal(fee.minor) > settings.max_fee_share * request.face_value_minor:
        raise field_error(
            "fee.amount", f"the fee may be at most {settings.max_fee_share} of the face value"
        )
    if request.recourse == Recourse.non_recourse and terms.recourse:
        raise field_error("recourse", "the requester asks for non-recourse offers")
    if request.recourse == Recourse.recourse and not terms.recourse:
        raise field_error("recourse", "the requester asks for offers with recourse")
    expires_at = terms.expires_at or request.closes_at
    if expires_at.tzinfo is None:
        raise field_error("expires_at", "expires_at needs a time zone (RFC 3339)")
    if expires_at <= at:
        raise field_error("expires_at", "expires_at must be in the future")
    if expires_at > request.closes_at:
        raise field_error("expires_at", "an offer cannot outlive the auction (closes_at)")
    try:
        figures = pricing.quote(
            face_value(request),
            request.due_date,
            at.date(),
            pricing.Terms(terms.advance_rate, terms.annual_rate, fee, terms.day_count),
        )
    except pricing.PricingError as exc:
        raise field_error("annual_rate", str(exc)) from None
    return fee, expires_at.astimezone(UTC), figures


async def place_offer(
    session: AsyncSession,
    principal: Principal,
    request_id: str,
    terms: OfferTerms,
    settings: FinancingSettings,
) -> tuple[Offer, Offer | None]:
    """A bank's sealed offer; it replaces the bank's active offer on the request, if any."""
    request = await _lock_request(session, request_id)
    if request is None or not await can_see_request(session, principal, request):
        raise NotFound(f"there is no financing request {request_id}")
    at = now()
    if not is_open(request, at):
        raise RequestClosed("the auction is closed", extra={"state": request.state})
    fee, expires_at, _ = _validate_terms(request, terms, settings, at)
    previous = (
        await session.execute(
            select(Offer)
            .where(
                col(Offer.request_id) == request.id,
                col(Offer.bank_id) == principal.organization_id,
                col(Offer.state) == OfferState.active.value,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if previous is not None:
        previous.state = OfferState.replaced.value
        previous.updated_at = at
        session.add(previous)
        await session.flush()
    offer = Offer(
        id=ids.new_id("ofr"),
        request_id=request.id,
        bank_id=principal.organization_id,
        advance_rate=terms.advance_rate,
        annual_rate=terms.annual_rate,
        fee_minor=fee.minor,
        currency=request.currency,
        day_count=terms.day_count.value,
        recourse=terms.recourse,
        expires_at=expires_at,
        state=OfferState.active.value,
        replaces_id=previous.id if previous else None,
        created_at=at,
    )
    session.add(offer)
    await session.flush()
    await audit.append(
        session,
        principal,
        "offer.replaced" if previous else "offer.placed",
        object_type="offer",
        object_id=offer.id,
        details={"request_id": request.id, "replaces": previous.id if previous else None},
    )
    await notify.publish(
        session,
        [request.requester_id],
        "offer.received",
        {"request_id": request.id, "offer_id": offer.id, "replaces": offer.replaces_id},
    )
    return offer, previous


async def withdraw_offer(session: AsyncSession, principal: Principal, offer_id: str) -> Offer:
    found = await session.get(Offer, offer_id)
    if found is None or found.bank_id != principal.organization_id:
        raise NotFound(f"there is no offer {offer_id}")
    request = await _lock_request(session, found.request_id)
    offer = await _lock_offer(session, offer_id)
    assert request is not None
    assert offer is not None
    if offer.state != OfferState.active:
        raise OfferNotActive(f"the offer is {offer.state}", extra={"state": offer.state})
    offer.state = OfferState.withdrawn.value
    offer.updated_at = now()
    session.add(offer)
    await audit.append(
        session, principal, "offer.withdrawn", object_type="offer", object_id=offer.id
    )
    await notify.publish(
        session,
        [request.requester_id],
        "offer.withdrawn",
        {"request_id": request.id, "offer_id": offer.id},
    )
    return offer


# ---------------------------------------------------------------- acceptance


async def _financed_elsewhere(session: AsyncSession, row: Receivable) -> str | None:
    """The id of another financed receivable of the same invoice that excludes this one: for a
    whole invoice any financed part; for a part, a financed whole."""
    query = select(col(Receivable.id)).where(
        col(Receivable.invoice_id) == row.invoice_id,
        col(Receivable.financing) == Financing.financed.value,
        col(Receivable.id) != row.id,
    )
    if row.parent_id is not None:
        query = query.where(col(Receivable.parent_id).is_(None))
    found = (await session.execute(query.limit(1))).scalar_one_or_none()
    return found


async def accept_offer(
    session: AsyncSession, principal: Principal, offer_id: str, settings: FinancingSettings
) -> FinancingRecord:
    """The requester accepts one active offer of its open request: exactly one ever wins."""
    found = await session.get(Offer, offer_id)
    if found is None:
        raise NotFound(f"there is no offer {offer_id}")
    request = await _lock_request(session, found.request_id)
    if request is None or request.requester_id != principal.organization_id:
        raise NotFound(f"there is no offer {offer_id}")
    offer = await _lock_offer(session, offer_id)
    assert offer is not None
    at = now()
    if request.state != RequestState.open:
        raise RequestClosed(f"the request is {request.state}", extra={"state": request.state})
    if request.closes_at <= at:
        raise RequestClosed("the auction closed", extra={"state": request.state})
    if offer.state != OfferState.active or offer.expires_at <= at:
        state = offer.state if offer.state != OfferState.active else "expired"
        raise OfferNotActive(f"the offer is {state}", extra={"state": state})
    items = await items_of(session, request.id)
    rows = await _lock_receivables(session, [i.receivable_id for i in items])
    amounts = {i.receivable_id: i.amount_minor for i in items}
    for row in rows:
        if row.financing != Financing.in_auction or row.holder_id != request.requester_id:
            raise NotEligible(
                f"receivable {row.id} is no longer in this auction",
                extra={"receivable_id": row.id, "states": lifecycle.states(row)},
            )
        if (
            row.confirmation != Confirmation.confirmed
            or row.holding != Holding.held
            or row.dispute == Dispute.open
            or row.settlement not in _FINANCEABLE_SETTLEMENT
            or row.open_amount_minor != amounts[row.id]
        ):
            raise NotEligible(
                f"receivable {row.id} changed since the request: it cannot be financed now",
                extra={"receivable_id": row.id, "states": lifecycle.states(row)},
            )
        other = await _financed_elsewhere(session, row)
        if other is not None:
            raise AlreadyFinanced(
                f"the invoice of receivable {row.id} is financed already",
                extra={"receivable_id": row.id},
            )
    try:
        figures = pricing.quote(face_value(request), request.due_date, at.date(), terms_of(offer))
    except pricing.PricingError as exc:
        raise OfferNotActive(f"the offer cannot be priced today: {exc}") from None
    financing = FinancingRecord(
        id=ids.new_id("fin"),
        request_id=request.id,
        offer_id=offer.id,
        bank_id=offer.bank_id,
        supplier_id=request.requester_id,
        debtor_id=request.debtor_id,
        currency=request.currency,
        face_value_minor=request.face_value_minor,
        advance_minor=figures.advance_amount.minor,
        discount_minor=figures.discount.minor,
        fee_minor=offer.fee_minor,
        net_proceeds_minor=figures.net_proceeds.minor,
        effective_annual_rate=figures.effective_annual_rate,
        advance_rate=offer.advance_rate,
        annual_rate=offer.annual_rate,
        day_count=offer.day_count,
        days=figures.days,
        recourse=offer.recourse,
        due_date=request.due_date,
        state=FinancingState.registering.value,
        accepted_at=at,
    )
    offer.state = OfferState.accepted.value
    offer.updated_at = at
    session.add(offer)
    await session.flush()  # the accepted offer first: its partial UNIQUE index is the backstop
    losers = await _close_offers(session, request.id, OfferState.lost, but=offer.id)
    request.state = RequestState.accepted.value
    request.accepted_offer_id = offer.id
    request.updated_at = at
    session.add(request)
    session.add(financing)
    await session.flush()
    await risk.attach_cover(session, financing)  # risk sharing: shares frozen, fee posted
    fingerprints = await _invoice_fingerprints(session, rows)
    for row in rows:
        await _receivable_event(
            session,
            row.id,
            "financing_accepted",
            principal.organization_id,
            {
                "request_id": request.id,
                "financing_id": financing.id,
                "financier_id": financing.bank_id,
            },
            financing=Financing.financed,
            financier_id=financing.bank_id,
        )
        await _registry(session, financing, row, fingerprints[row.id], RegistryAction.register)
    await audit.append(
        session,
        principal,
        "offer.accepted",
        object_type="financing",
        object_id=financing.id,
        details={"request_id": request.id, "offer_id": offer.id, "lost": len(losers)},
    )
    await notify.publish(
        session,
        [offer.bank_id],
        "offer.accepted",
        {"request_id": request.id, "offer_id": offer.id, "financing_id": financing.id},
    )
    await notify.publish_each(
        session,
        "offer.lost",
        [(loser.bank_id, {"request_id": request.id, "offer_id": loser.id}) for loser in losers],
    )
    await notify.publish(
        session,
        [request.debtor_id],
        "receivable.assigned",
        {
            "financing_id": financing.id,
            "receivable_ids": [r.id for r in rows],
            "financier_id": financing.bank_id,
            "pay_to": financing.bank_id,
        },
    )
    return financing


async def _invoice_fingerprints(
    session: AsyncSession, rows: Sequence[Receivable]
) -> dict[str, str]:
    invoice_ids = {r.invoice_id for r in rows}
    result = await session.execute(
        select(col(Invoice.id), col(Invoice.fingerprint)).where(col(Invoice.id).in_(invoice_ids))
    )
    by_invoice = {i: f for i, f in result.all()}
    return {r.id: by_invoice[r.invoice_id] for r in rows}


async def _registry(
    session: AsyncSession,
    financing: FinancingRecord,
    row: Receivable,
    invoice_fingerprint: str,
    action: RegistryAction,
    reason: ReleaseReason | None = None,
) -> None:
    """One FinancingRegistry operation, sent to the ledger through the outbox."""
    operation = RegistryOperation(
        operation_id=ids.new_id("rop"),
        financing_id=financing.id,
        receivable_id=row.id,
        action=action.value,
        reason=int(reason) if reason is not None else None,
    )
    session.add(operation)
    await session.flush()
    await outbox.emit(
        session,
        REGISTRY_TOPIC,
        {
            "operation_id": operation.operation_id,
            "action": action.value,
            "financing_id": financing.id,
            "receivable_id": row.id,
            "invoice_fingerprint": invoice_fingerprint,
            "part": row.parent_id is not None,
            "reason": operation.reason,
        },
        event_id=operation.operation_id,
    )


async def _release_registered(
    session: AsyncSession, financing: FinancingRecord, reason: ReleaseReason
) -> int:
    """Release every receivable of the financing whose registration is done (and not yet
    released)."""
    ops = (
        await session.execute(
            select(RegistryOperation).where(col(RegistryOperation.financing_id) == financing.id)
        )
    ).scalars()
    registered: set[str] = set()
    released: set[str] = set()
    for op in ops:
        if op.action == RegistryAction.register and op.outcome == "done":
            registered.add(op.receivable_id)
        if op.action == RegistryAction.release:
            released.add(op.receivable_id)
    todo = sorted(registered - released)
    if not todo:
        return 0
    rows = [r for r in [await session.get(Receivable, i) for i in todo] if r is not None]
    fingerprints = await _invoice_fingerprints(session, rows)
    for row in rows:
        await _registry(
            session, financing, row, fingerprints[row.id], RegistryAction.release, reason
        )
    return len(rows)


async def _financing_receivables(session: AsyncSession, financing: FinancingRecord) -> list[str]:
    return [i.receivable_id for i in await items_of(session, financing.request_id)]


async def apply_registry_result(session: AsyncSession, result: dict[str, Any]) -> None:
    """The ledger's answer to one registry operation (idempotent: a repeated answer is a no-op)."""
    found = await session.execute(
        select(RegistryOperation)
        .where(col(RegistryOperation.operation_id) == result.get("operation_id"))
        .with_for_update()
    )
    op = found.scalar_one_or_none()
    if op is None:
        log.warning("registry_result_unknown_operation", operation_id=result.get("operation_id"))
        return
    if op.outcome is not None:
        return
    financing = await _lock_financing(session, op.financing_id)
    assert financing is not None
    op.outcome = "done" if result.get("outcome") == "done" else "refused"
    op.error = result.get("error")
    op.tx_hash = result.get("tx_hash")
    op.block_number = result.get("block_number")
    op.completed_at = now()
    session.add(op)
    await session.flush()
    if op.action != RegistryAction.register:
        return
    if op.outcome == "refused":
        if financing.state == FinancingState.registering:
            await _roll_back(session, financing, op)
        return
    if financing.state == FinancingState.rolled_back:
        await _release_registered(session, financing, ReleaseReason.cancelled)
        return
    pending = await session.execute(
        select(func.count())
        .select_from(RegistryOperation)
        .where(
            col(RegistryOperation.financing_id) == financing.id,
            col(RegistryOperation.action) == RegistryAction.register.value,
            col(RegistryOperation.outcome).is_distinct_from("done"),
        )
    )
    if pending.scalar_one() or financing.state != FinancingState.registering:
        return
    at = now()
    settings = _settings()
    financing.state = FinancingState.awaiting_disbursement.value
    financing.registered_at = at
    financing.fund_by = at + timedelta(seconds=settings.funding_window_seconds)
    financing.updated_at = at
    session.add(financing)
    await notify.publish(
        session,
        [financing.bank_id, financing.supplier_id],
        "financing.registered",
        {"financing_id": financing.id, "fund_by": financing.fund_by.isoformat()},
    )


def _settings() -> FinancingSettings:
    return get_financing_settings()


async def _roll_back(
    session: AsyncSession, financing: FinancingRecord, refused: RegistryOperation
) -> None:
    """The chain refused a registration: the invoice is financed elsewhere. The financing ends
    as ``rolled_back``, what was registered is released, the receivables leave the market."""
    at = now()
    financing.state = FinancingState.rolled_back.value
    financing.state_reason = f"FinancingRegistry refused {refused.receivable_id}: {refused.error}"
    financing.closed_at = at
    financing.updated_at = at
    session.add(financing)
    request = await _lock_request(session, financing.request_id)
    assert request is not None
    request.state = RequestState.rolled_back.value
    request.state_reason = financing.state_reason
    request.updated_at = at
    session.add(request)
    await _end_items(session, request.id)
    for receivable_id in await _financing_receivables(session, financing):
        await _receivable_event(
            session,
            receivable_id,
            "financing_rolled_back",
            SYSTEM_ACTOR,
            {
                "financing_id": financing.id,
                "refused_receivable_id": refused.receivable_id,
                "registry_error": refused.error,
            },
            financing=Financing.unfinanced,
            financier_id=None,
        )
    await _release_registered(session, financing, ReleaseReason.cancelled)
    log.warning(
        "financing_rolled_back",
        financing_id=financing.id,
        receivable_id=refused.receivable_id,
        error=refused.error,
    )
    await notify.publish(
        session,
        [financing.bank_id, financing.supplier_id],
        "financing.rolled_back",
        {"financing_id": financing.id, "reason": financing.state_reason},
    )


# ---------------------------------------------------------------- funding


async def record_disbursement(
    session: AsyncSession,
    principal: Principal,
    financing_id: str,
    reference: str,
    amount: Money | None,
) -> FinancingRecord:
    """The bank confirms it paid the advance (net proceeds) to the supplier."""
    financing = await _lock_financing(session, financing_id)
    if financing is None or not can_see_financing(principal, financing):
        raise NotFound(f"there is no financing {financing_id}")
    if financing.bank_id != principal.organization_id:
        raise Forbidden("only the financing bank confirms its disbursement")
    if financing.state == FinancingState.registering:
        raise FinancingStateConflict(
            "the financing is still being registered on chain: fund it once it is "
            "awaiting_disbursement",
            extra={"state": financing.state, "reason": "registration_pending"},
        )
    if financing.state != FinancingState.awaiting_disbursement:
        raise FinancingStateConflict(
            f"the financing is {financing.state}", extra={"state": financing.state}
        )
    net = Money(financing.net_proceeds_minor, financing.currency)
    if amount is not None and amount != net:
        raise field_error("amount", f"the disbursement must be the net proceeds, {net}")
    at = now()
    financing.state = FinancingState.funded.value
    financing.funded_at = at
    financing.disbursement_reference = reference
    financing.updated_at = at
    session.add(financing)
    request = await _lock_request(session, financing.request_id)
    assert request is not None
    request.state = RequestState.funded.value
    request.updated_at = at
    session.add(request)
    for receivable_id in await _financing_receivables(session, financing):
        await _receivable_event(
            session,
            receivable_id,
            "financing_funded",
            principal.organization_id,
            {"financing_id": financing.id, "net_proceeds": net.to_json()},
        )
    await audit.append(
        session,
        principal,
        "financing.funded",
        object_type="financing",
        object_id=financing.id,
        details={"reference": reference},
    )
    await notify.publish(
        session, [financing.supplier_id], "financing.funded", {"financing_id": financing.id}
    )
    return financing


# ---------------------------------------------------------------- timers


async def _due_ids(session: AsyncSession, query: Any, limit: int) -> list[str]:
    result = await session.execute(query.limit(limit).with_for_update(skip_locked=True))
    return [row for row in result.scalars()]


async def close_auction(session: AsyncSession, request_id: str) -> bool:
    """An open request past ``closes_at`` without an acceptance expires (idempotent)."""
    request = await _lock_request(session, request_id)
    if request is None or request.state != RequestState.open or request.closes_at > now():
        return False
    request.state = RequestState.expired.value
    request.state_reason = "closed without an acceptance"
    request.updated_at = now()
    session.add(request)
    closed = await _close_offers(session, request.id, OfferState.expired)
    await _return_to_market(
        session, request, "financing_request_ended", SYSTEM_ACTOR, {"outcome": "expired"}
    )
    await notify.publish(
        session, [request.requester_id], "financing_request.expired", {"request_id": request.id}
    )
    await notify.publish_each(
        session,
        "offer.expired",
        [(o.bank_id, {"request_id": request.id, "offer_id": o.id}) for o in closed],
    )
    return True


async def expire_offer(session: AsyncSession, offer_id: str) -> bool:
    offer = await _lock_offer(session, offer_id)
    if offer is None or offer.state != OfferState.active or offer.expires_at > now():
        return False
    offer.state = OfferState.expired.value
    offer.updated_at = now()
    session.add(offer)
    await notify.publish(
        session,
        [offer.bank_id],
        "offer.expired",
        {"request_id": offer.request_id, "offer_id": offer.id},
    )
    return True


async def lapse(session: AsyncSession, financing_id: str) -> bool:
    """The bank did not fund within the window: the acceptance lapses, the receivables return
    to the market and the registry entries are released (idempotent)."""
    financing = await _lock_financing(session, financing_id)
    at = now()
    if (
        financing is None
        or financing.state != FinancingState.awaiting_disbursement
        or financing.fund_by is None
        or financing.fund_by > at
    ):
        return False
    financing.state = FinancingState.lapsed.value
    financing.state_reason = "the bank did not confirm the disbursement in time"
    financing.closed_at = at
    financing.updated_at = at
    session.add(financing)
    request = await _lock_request(session, financing.request_id)
    assert request is not None
    request.state = RequestState.lapsed.value
    request.state_reason = financing.state_reason
    request.updated_at = at
    session.add(request)
    await _return_to_market(
        session, request, "financing_lapsed", SYSTEM_ACTOR, {"financing_id": financing.id}
    )
    await _release_registered(session, financing, ReleaseReason.cancelled)
    await notify.publish(
        session,
        [financing.bank_id, financing.supplier_id],
        "financing.lapsed",
        {"financing_id": financing.id},
    )
    return True


async def _paid_to(session: AsyncSession, financing: FinancingRecord) -> int:
    receivable_ids = await _financing_receivables(session, financing)
    total = await session.execute(
        select(func.coalesce(func.sum(col(ReceivablePayment.applied_minor)), 0)).where(
            col(ReceivablePayment.receivable_id).in_(receivable_ids),
            col(ReceivablePayment.payee_id) == financing.bank_id,
        )
    )
    return int(total.scalar_one())


async def settle(session: AsyncSession, financing_id: str, on: date) -> str | None:
    """A funded financing whose receivables are all paid is ``repaid``; one still unpaid past
    its due date plus the grace period is ``defaulted`` (with the recourse claim on the supplier
    when the offer had recourse). Returns the new state, or None (idempotent)."""
    financing = await _lock_financing(session, financing_id)
    if financing is None or financing.state != FinancingState.funded:
        return None
    receivable_ids = await _financing_receivables(session, financing)
    rows = [r for r in [await session.get(Receivable, i) for i in receivable_ids] if r]
    unpaid = sum(r.open_amount_minor for r in rows if r.settlement != Settlement.paid)
    settings = _settings()
    at = now()
    if unpaid == 0:
        outcome = FinancingState.repaid
        reason = ReleaseReason.repaid
    elif on > financing.due_date + timedelta(days=settings.default_grace_days):
        outcome = FinancingState.defaulted
        reason = ReleaseReason.defaulted
        if financing.recourse:
            financing.recourse_claim_minor = unpaid
    else:
        return None
    financing.state = outcome.value
    financing.repaid_minor = await _paid_to(session, financing)
    financing.closed_at = at
    financing.updated_at = at
    session.add(financing)
    if outcome == FinancingState.defaulted:  # risk sharing: the cover's claims, if covered
        await session.flush()
        await risk.on_default(session, financing)
    request = await _lock_request(session, financing.request_id)
    assert request is not None
    request.state = (
        RequestState.repaid.value
        if outcome == FinancingState.repaid
        else RequestState.defaulted.value
    )
    request.updated_at = at
    session.add(request)
    await _end_items(session, request.id)
    data: dict[str, Any] = {
        "financing_id": financing.id,
        "repaid": Money(financing.repaid_minor, financing.currency).to_json(),
    }
    if outcome == FinancingState.defaulted:
        data["unpaid"] = Money(unpaid, financing.currency).to_json()
        data["recourse_claim"] = Money(financing.recourse_claim_minor, financing.currency).to_json()
    for receivable_id in receivable_ids:
        await _receivable_event(
            session, receivable_id, f"financing_{outcome.value}", SYSTEM_ACTOR, data
        )
    await _release_registered(session, financing, reason)
    await notify.publish(
        session,
        [financing.bank_id, financing.supplier_id],
        f"financing.{outcome.value}",
        data,
    )
    return outcome.value


@dataclass
class TickReport:
    auctions_closed: int = 0
    offers_expired: int = 0
    lapsed: int = 0
    repaid: int = 0
    defaulted: int = 0


def due_auctions(at: datetime) -> Any:
    return select(col(FinancingRequest.id)).where(
        col(FinancingRequest.state) == RequestState.open.value,
        col(FinancingRequest.closes_at) <= at,
    )


def due_offers(at: datetime) -> Any:
    return select(col(Offer.id)).where(
        col(Offer.state) == OfferState.active.value, col(Offer.expires_at) <= at
    )


def due_lapses(at: datetime) -> Any:
    return select(col(FinancingRecord.id)).where(
        col(FinancingRecord.state) == FinancingState.awaiting_disbursement.value,
        col(FinancingRecord.fund_by) <= at,
    )


def settling(on: date, grace_days: int) -> Any:
    """Funded financings with nothing left unpaid, or unpaid past due date plus grace."""
    unpaid = (
        select(col(FinancingRequestItem.request_id))
        .join(Receivable, col(Receivable.id) == col(FinancingRequestItem.receivable_id))
        .where(
            col(FinancingRequestItem.request_id) == col(FinancingRecord.request_id),
            col(Receivable.settlement) != Settlement.paid.value,
        )
        .exists()
    )
    return select(col(FinancingRecord.id)).where(
        col(FinancingRecord.state) == FinancingState.funded.value,
        ~unpaid | (col(FinancingRecord.due_date) < on - timedelta(days=grace_days)),
    )


__all__ = [
    "AlreadyFinanced",
    "FinancingStateConflict",
    "NotEligible",
    "OfferNotActive",
    "OfferTerms",
    "RankedOffer",
    "RequestClosed",
    "TickReport",
    "accept_offer",
    "apply_registry_result",
    "cancel_request",
    "close_auction",
    "create_request",
    "expire_offer",
    "get_financing",
    "get_offer",
    "get_request",
    "lapse",
    "place_offer",
    "rank",
    "record_disbursement",
    "settle",
    "withdraw_offer",
]
