"""HTTP side of the marketplace (API.md, "Resources"): financing requests, offers, financings.
The rules live in :mod:`services.api.financing.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit.money import Money, MoneyModel
from services.api.auth.dependencies import Session, require_roles
from services.api.auth.models import Principal
from services.api.auth.pagination import Cursor, Limit, Page, paginate
from services.api.financing import service
from services.api.financing.models import (
    FinancingRecord,
    FinancingRequest,
    FinancingState,
    Offer,
    OfferState,
    RegistryOperation,
    RequestState,
)
from services.api.financing.schemas import (
    DisbursementCreate,
    FinancingPublic,
    OfferCreate,
    OfferPublic,
    Party,
    RequestCreate,
    RequestPublic,
    item_public,
)
from services.api.financing.settings import FinancingSettings, get_financing_settings
from services.api.organizations.models import Organization, Role
from services.api.receivables import ledger, repository
from services.api.receivables.models import Receivable
from services.api.receivables.router import Ledger
from services.api.risk import service as risk  # risk sharing: the guarantee shown

requests_router = APIRouter(prefix="/v1/financing-requests", tags=["financing"])
offers_router = APIRouter(prefix="/v1/offers", tags=["financing"])
financings_router = APIRouter(prefix="/v1/financings", tags=["financing"])

Supplier = Annotated[Principal, Depends(require_roles(Role.supplier))]
Bank = Annotated[Principal, Depends(require_roles(Role.bank))]
SupplierOrBank = Annotated[Principal, Depends(require_roles(Role.supplier, Role.bank))]
FinancingParty = Annotated[
    Principal, Depends(require_roles(Role.supplier, Role.bank, Role.core_firm, Role.guarantor))
]


def financing_settings(request: Request) -> FinancingSettings:
    config = getattr(request.app.state, "financing_settings", None)
    return config if isinstance(config, FinancingSettings) else get_financing_settings()


Config = Annotated[FinancingSettings, Depends(financing_settings)]


async def _anchoring_of(
    session: AsyncSession, client: ledger.LedgerClient, ids: list[str]
) -> dict[str, str]:
    """Each receivable's anchoring status: one query for the events, one ledger call per page."""
    events = await repository.events_of_many(session, ids)
    answers = await ledger.anchoring_many(client, events)
    return {rid: status for rid, (status, _) in answers.items()}


def _least(statuses: list[str]) -> str:
    if "unknown" in statuses:
        return "unknown"
    return min(statuses, key=ledger.ORDER.__getitem__, default="pending")


async def _present(
    session: AsyncSession,
    principal: Principal,
    rows: list[FinancingRequest],
    client: ledger.LedgerClient,
) -> list[RequestPublic]:
    if not rows:
        return []
    org = principal.organization_id
    debtor_ids = {r.debtor_id for r in rows}
    debtors = {
        o.id: o
        for o in (
            await session.execute(select(Organization).where(col(Organization.id).in_(debtor_ids)))
        ).scalars()
    }
    items = await service.items_of_many(session, [r.id for r in rows])
    receivable_ids = [i.receivable_id for its in items.values() for i in its]
    receivables = {
        rv.id: rv
        for rv in (
            await session.execute(select(Receivable).where(col(Receivable.id).in_(receivable_ids)))
        ).scalars()
    }
    anchoring = await _anchoring_of(session, client, receivable_ids)
    guarantees = await risk.programme_views(session, [r.id for r in rows])
    own = [r.id for r in rows if r.requester_id == org]
    active: dict[str, int] = {}
    if own:
        counted = await session.execute(
            select(col(Offer.request_id), func.count())
            .where(col(Offer.request_id).in_(own), col(Offer.state) == OfferState.active.value)
            .group_by(col(Offer.request_id))
        )
        active = {rid: int(n) for rid, n in counted.all()}
    won: set[str] = set()
    if principal.role == Role.bank:
        accepted = [r.accepted_offer_id for r in rows if r.accepted_offer_id]
        if accepted:
            mine = await session.execute(
                select(col(Offer.id)).where(col(Offer.id).in_(accepted), col(Offer.bank_id) == org)
            )
            won = set(mine.scalars())
    out = []
    for r in rows:
        debtor = debtors[r.debtor_id]
        its = items[r.id]
        mine_request = r.requester_id == org
        out.append(
            RequestPublic(
                id=r.id,
                state=r.state,
                state_reason=r.state_reason,
                closes_at=r.closes_at,
                face_value=MoneyModel.from_money(Money(r.face_value_minor, r.currency)),
                due_date=r.due_date,
                debtor=Party(id=debtor.id, name=debtor.name, cluster=debtor.cluster),
                tier=max(receivables[i.receivable_id].tier for i in its),
                min_advance_rate=r.min_advance_rate,
                recourse=r.recourse,
                receivables=[
                    item_public(
                        i,
                        receivables[i.receivable_id].due_date,
                        receivables[i.receivable_id].tier,
                        r.currency,
                        anchoring[i.receivable_id],
                    )
                    for i in its
                ],
                anchoring=_least([anchoring[i.receivable_id] for i in its]),
                created_at=r.created_at,
                requester_id=r.requester_id if mine_request else None,
                active_offers=active.get(r.id, 0) if mine_request else None,
                accepted_offer_id=(
                    r.accepted_offer_id if mine_request or r.accepted_offer_id in won else None
                ),
                guarantee=guarantees[r.id],
            )
        )
    return out


@requests_router.post("", status_code=201, response_model=RequestPublic)
async def create_request(
    body: RequestCreate,
    principal: Supplier,
    session: Session,
    client: Ledger,
    config: Config,
    response: Response,
) -> RequestPublic:
    """Ask banks to finance confirmed receivables the caller holds (one debtor, currency and due
    date per request): they bid until ``closes_at``."""
    request, _ = await service.create_request(
        session,
        principal,
        body.receivable_ids,
        body.closes_at,
        body.min_advance_rate,
        body.recourse,
        config,
        programme_id=body.programme_id,
    )
    response.headers["Location"] = f"/v1/financing-requests/{request.id}"
    return (await _present(session, principal, [request], client))[0]


@requests_router.get("", response_model=Page[RequestPublic])
async def list_requests(
    principal: SupplierOrBank,
    session: Session,
    client: Ledger,
    limit: Limit = 50,
    cursor: Cursor = None,
    state: Annotated[RequestState | None, Query()] = None,
) -> Page[RequestPublic]:
    """A requester's own requests; for a bank, the requests open for bids (with ``state``, the
    ones in that state it bid on)."""
    query = service.list_requests_query(principal, state)
    rows, next_cursor = await paginate(session, query, FinancingRequest.id, limit, cursor)
    items = await _present(session, principal, rows, client)
    return Page[RequestPublic](items=items, next_cursor=next_cursor)


@requests_router.get("/{request_id}", response_model=RequestPublic)
async def get_request(
    request_id: str, principal: SupplierOrBank, session: Session, client: Ledger
) -> RequestPublic:
    request = await service.get_request(session, principal, request_id)
    return (await _present(session, principal, [request], client))[0]


@requests_router.post("/{request_id}/cancel", response_model=RequestPublic)
async def cancel_request(
    request_id: str, principal: Supplier, session: Session, client: Ledger
) -> RequestPublic:
    """The requester withdraws its request while it is open; active offers expire."""
    request = await service.cancel_request(session, principal, request_id)
    return (await _present(session, principal, [request], client))[0]


@requests_router.post("/{request_id}/offers", status_code=201, response_model=OfferPublic)
async def place_offer(
    request_id: str, body: OfferCreate, principal: Bank, session: Session, config: Config
) -> OfferPublic:
    """A sealed bid. A bank has one active offer per request: a new one replaces it."""
    fee = body.fee.to_money()
    offer, _ = await service.place_offer(
        session,
        principal,
        request_id,
        service.OfferTerms(
            advance_rate=body.advance_rate,
            annual_rate=body.annual_rate,
            fee=fee.amount,
            fee_currency=fee.currency,
            day_count=body.day_count,
            recourse=body.recourse,
            expires_at=body.expires_at,
        ),
        config,
    )
    request = await session.get(FinancingRequest, offer.request_id)
    assert request is not None
    ranked = service.rank(request, [offer], service.today())
    return OfferPublic.of(offer, ranked[0].quote)


@requests_router.get("/{request_id}/offers", response_model=list[OfferPublic])
async def list_request_offers(
    request_id: str, principal: SupplierOrBank, session: Session
) -> list[OfferPublic]:
    """The requester: every offer, active ones ranked by net proceeds (then effective rate, then
    time of bid). A bank: only its own."""
    request = await service.get_request(session, principal, request_id)
    offers = await service.offers_for(session, principal, request)
    ranked = service.rank(request, offers, service.today())
    if request.requester_id != principal.organization_id:
        return [OfferPublic.of(r.offer, r.quote) for r in ranked]
    return [OfferPublic.of(r.offer, r.quote, r.rank) for r in ranked]


@offers_router.get("", response_model=Page[OfferPublic])
async def list_offers(
    principal: SupplierOrBank,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    state: Annotated[OfferState | None, Query()] = None,
) -> Page[OfferPublic]:
    """A bank's own offers; a supplier's: the offers on its requests."""
    query = service.list_offers_query(principal, state)
    rows, next_cursor = await paginate(session, query, Offer.id, limit, cursor)
    return Page[OfferPublic](items=[OfferPublic.of(o) for o in rows], next_cursor=next_cursor)


@offers_router.get("/{offer_id}", response_model=OfferPublic)
async def get_offer(offer_id: str, principal: SupplierOrBank, session: Session) -> OfferPublic:
    offer = await service.get_offer(session, principal, offer_id)
    request = await session.get(FinancingRequest, offer.request_id)
    assert request is not None
    ranked = service.rank(request, [offer], service.today())
    return OfferPublic.of(offer, ranked[0].quote)


@offers_router.post("/{offer_id}/withdraw", response_model=OfferPublic)
async def withdraw_offer(offer_id: str, principal: Bank, session: Session) -> OfferPublic:
    """The bidding bank withdraws its active offer."""
    return OfferPublic.of(await service.withdraw_offer(session, principal, offer_id))


async def _financing_public(session: AsyncSession, row: FinancingRecord) -> FinancingPublic:
    receivable_ids = [i.receivable_id for i in await service.items_of(session, row.request_id)]
    ops = await session.execute(
        select(RegistryOperation)
        .where(col(RegistryOperation.financing_id) == row.id)
        .order_by(col(RegistryOperation.created_at), col(RegistryOperation.operation_id))
    )
    registry = [
        {
            "operation_id": op.operation_id,
            "receivable_id": op.receivable_id,
            "action": op.action,
            "reason": op.reason,
            "outcome": op.outcome or "pending",
            "error": op.error,
            "tx_hash": op.tx_hash,
            "block_number": op.block_number,
        }
        for op in ops.scalars()
    ]
    public = FinancingPublic.of(row, receivable_ids, registry)
    public.guarantee = await risk.cover_view(session, row.id)  # risk sharing
    return public


@offers_router.post("/{offer_id}/accept", status_code=201, response_model=FinancingPublic)
async def accept_offer(
    offer_id: str, principal: Supplier, session: Session, config: Config, response: Response
) -> FinancingPublic:
    """The requester accepts one active offer: exactly one ever wins. The financing starts as
    ``registering`` (FinancingRegistry on chain) and becomes ``awaiting_disbursement``."""
    financing = await service.accept_offer(session, principal, offer_id, config)
    response.headers["Location"] = f"/v1/financings/{financing.id}"
    return await _financing_public(session, financing)


@financings_router.get("", response_model=Page[FinancingPublic])
async def list_financings(
    principal: FinancingParty,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    state: Annotated[FinancingState | None, Query()] = None,
) -> Page[FinancingPublic]:
    """The financings the caller is the bank, the supplier or the debtor of."""
    query = service.list_financings_query(principal, state)
    rows, next_cursor = await paginate(session, query, FinancingRecord.id, limit, cursor)
    return Page[FinancingPublic](
        items=[await _financing_public(session, r) for r in rows], next_cursor=next_cursor
    )


@financings_router.get("/{financing_id}", response_model=FinancingPublic)
async def get_financing(
    financing_id: str, principal: FinancingParty, session: Session
) -> FinancingPublic:
    row = await service.get_financing(session, principal, financing_id)
    return await _financing_public(session, row)


@financings_router.post("/{financing_id}/disbursement", response_model=FinancingPublic)
async def record_disbursement(
    financing_id: str, body: DisbursementCreate, principal: Bank, session: Session
) -> FinancingPublic:
    """The bank confirms it paid the net proceeds to the supplier (→ ``funded``)."""
    amount = body.amount.to_money() if body.amount is not None else None
    row = await service.record_disbursement(
        session, principal, financing_id, body.reference, amount
    )
    return await _financing_public(session, row)
