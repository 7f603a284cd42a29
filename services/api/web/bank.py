"""The bank's pages: the requests open for bids with what a bank needs to price them (the debtor
and its cluster, face value, due date, tier, the receivables' anchoring — never the supplier), a
bid form with a live quote, its own offers (withdraw), and its portfolio of financings won.

Sealed bids as in the API: a bank sees only its own offers (``financing.service.offers_for``,
``list_offers_query``), a request it may not see is the 404 page. The live quote is
``financing.pricing.quote`` on the server, the same arithmetic the service ranks and records
with; bids go through ``financing.service.place_offer`` with the API's ``OfferCreate``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit.errors import NotFound, QilianError
from qilian.kit.money import Money
from services.api.auth.dependencies import Session
from services.api.auth.models import Principal
from services.api.financing import pricing, service
from services.api.financing.models import (
    FinancingRecord,
    FinancingRequest,
    FinancingRequestItem,
    FinancingState,
    Offer,
    OfferState,
    Recourse,
)
from services.api.financing.schemas import OfferCreate
from services.api.organizations.models import Organization, Role
from services.api.receivables import ledger, repository
from services.api.receivables.models import Receivable
from services.api.receivables.router import Ledger
from services.api.web import repository as web_repository
from services.api.web.financing import Config, local_datetime, local_input, page_context
from services.api.web.rendering import (
    FormErrors,
    PageRoute,
    from_problem,
    from_validation,
    redirect,
    render,
    t,
)
from services.api.web.session import page_roles

router = APIRouter(prefix="/web/bank", route_class=PageRoute, include_in_schema=False)

BankPage = Annotated[Principal, Depends(page_roles(Role.bank))]

LIST_SIZE: Final = 200
DUE_SOON_DAYS: Final = 30
TERMS: Final = ("advance_rate", "annual_rate", "fee", "day_count", "recourse", "expires_at")
QUOTE_TERMS: Final = ("advance_rate", "annual_rate", "fee", "day_count")


async def _organizations(session: AsyncSession, ids: list[str]) -> dict[str, Organization]:
    if not ids:
        return {}
    result = await session.execute(
        select(Organization).where(col(Organization.id).in_(sorted(set(ids))))
    )
    return {o.id: o for o in result.scalars()}


async def _tiers(session: AsyncSession, request_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per request: the deepest tier of its receivables and how many there are."""
    if not request_ids:
        return {}
    result = await session.execute(
        select(
            col(FinancingRequestItem.request_id),
            func.max(col(Receivable.tier)),
            func.count(),
        )
        .join(Receivable, col(Receivable.id) == col(FinancingRequestItem.receivable_id))
        .where(col(FinancingRequestItem.request_id).in_(request_ids))
        .group_by(col(FinancingRequestItem.request_id))
    )
    return {rid: (int(tier), int(n)) for rid, tier, n in result.all()}


async def _my_active(session: AsyncSession, bank_id: str, request_ids: list[str]) -> set[str]:
    if not request_ids:
        return set()
    result = await session.execute(
        select(col(Offer.request_id)).where(
            col(Offer.bank_id) == bank_id,
            col(Offer.request_id).in_(request_ids),
            col(Offer.state) == OfferState.active.value,
        )
    )
    return set(result.scalars())


async def _anchoring(
    session: AsyncSession, client: ledger.LedgerClient, receivable_ids: list[str]
) -> dict[str, str]:
    """Each receivable's anchoring status, as the API's financing requests show it (one query
    for the events, one ledger call)."""
    events = await repository.events_of_many(session, receivable_ids)
    answers = await ledger.anchoring_many(client, events)
    return {rid: status for rid, (status, _) in answers.items()}


def _least(statuses: list[str]) -> str:
    if "unknown" in statuses:
        return "unknown"
    return min(statuses, key=ledger.ORDER.__getitem__, default="pending")


# ---------------------------------------------------------------- open requests


@router.get("", response_class=HTMLResponse)
@router.get("/requests", response_class=HTMLResponse)
async def open_requests(request: Request, principal: BankPage, session: Session) -> Any:
    """The requests open for bids, closing first on top: the pricing facts only."""
    query = service.list_requests_query(principal, None)
    rows = list(
        (
            await session.execute(
                query.order_by(col(FinancingRequest.closes_at), col(FinancingRequest.id)).limit(
                    LIST_SIZE
                )
            )
        ).scalars()
    )
    ids = [r.id for r in rows]
    return render(
        request,
        "bank_requests.html",
        rows=rows,
        debtors=await _organizations(session, [r.debtor_id for r in rows]),
        tiers=await _tiers(session, ids),
        mine=await _my_active(session, principal.organization_id, ids),
        anchor_query=urlencode([("id", i) for i in ids]),
        today=service.today(),
        **page_context(request),
    )


@router.get("/anchoring/requests", response_class=HTMLResponse)
async def anchoring_badges(
    request: Request,
    principal: BankPage,
    session: Session,
    client: Ledger,
    request_ids: Annotated[list[str], Query(alias="id", min_length=1, max_length=LIST_SIZE)],
) -> Any:
    """The least advanced anchoring of each listed request's receivables, in one answer
    (loaded by htmx after the table): a query each for the requests, their items and their
    events, one ledger call, each badge an out-of-band swap into its row. A request the bank
    may not see is the 404 page."""
    wanted = list(dict.fromkeys(request_ids))
    found = await session.execute(
        select(FinancingRequest).where(col(FinancingRequest.id).in_(wanted))
    )
    rows = {r.id: r for r in found.scalars()}
    for request_id in wanted:
        row = rows.get(request_id)
        if row is None or not await service.can_see_request(session, principal, row):
            raise NotFound(f"there is no financing request {request_id}")
    items = await service.items_of_many(session, wanted)
    statuses = await _anchoring(
        session, client, [i.receivable_id for v in items.values() for i in v]
    )
    badges = [(rid, _least([statuses[i.receivable_id] for i in items[rid]])) for rid in wanted]
    return render(request, "_anchor_badges.html", badges=badges)


def _default_terms(row: FinancingRequest) -> dict[str, str]:
    return {
        "advance_rate": str(row.min_advance_rate.normalize()) if row.min_advance_rate else "",
        "annual_rate": "",
        "fee": "",
        "day_count": pricing.DayCount.act_360.value,
        "recourse": "false" if row.recourse == Recourse.non_recourse else "true",
        "expires_at": "",
    }


async def request_detail(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    client: ledger.LedgerClient,
    request_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    row = await service.get_request(session, principal, request_id)
    items = await service.items_of(session, row.id)
    receivables = {i.receivable_id: await session.get(Receivable, i.receivable_id) for i in items}
    anchoring = await _anchoring(session, client, [i.receivable_id for i in items])
    debtor = await session.get(Organization, row.debtor_id)
    mine = service.rank(row, await service.offers_for(session, principal, row), service.today())
    values = values or _default_terms(row)
    quote, quote_errors = (
        _quote(request, row, values)
        if all(values.get(n) for n in ("advance_rate", "annual_rate", "fee"))
        else (None, FormErrors())
    )
    return render(
        request,
        "bank_request.html",
        status_code,
        r=row,
        open=service.is_open(row),
        face_value=service.face_value(row),
        debtor=debtor,
        items=[(i, receivables[i.receivable_id], anchoring[i.receivable_id]) for i in items],
        anchor_status=_least(list(anchoring.values())),
        mine=mine,
        values=values,
        errors=errors or FormErrors(),
        quote=quote,
        quote_errors=quote_errors,
        day_counts=[d.value for d in pricing.DayCount],
        closes_at_input=local_input(row.closes_at),
        done=request.query_params.get("done"),
        **page_context(request),
    )


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(
    request_id: str, request: Request, principal: BankPage, session: Session, client: Ledger
) -> Any:
    return await request_detail(request, session, principal, client, request_id)


def _offer_body(row: FinancingRequest, values: dict[str, str], expires_at: datetime | None) -> Any:
    return OfferCreate.model_validate(
        {
            "advance_rate": values["advance_rate"],
            "annual_rate": values["annual_rate"],
            "fee": {"amount": values["fee"], "currency": row.currency},
            "day_count": values["day_count"],
            "recourse": values.get("recourse") == "true",
            "expires_at": expires_at,
        }
    )


def _quote(
    request: Request, row: FinancingRequest, values: dict[str, str]
) -> tuple[pricing.Quote | None, FormErrors]:
    """The figures of the typed terms as of today (``pricing.quote``), or why there are none."""
    errors = FormErrors()
    try:
        body = _offer_body(row, {**values, "recourse": "true"}, None)
    except ValidationError as exc:
        return None, from_validation(exc, request=request)
    try:
        figures = pricing.quote(
            service.face_value(row),
            row.due_date,
            service.today(),
            pricing.Terms(body.advance_rate, body.annual_rate, body.fee.to_money(), body.day_count),
        )
    except pricing.PricingError as exc:
        errors.form = str(exc)
        return None, errors
    return figures, errors


@router.get("/requests/{request_id}/quote", response_class=HTMLResponse)
async def live_quote(
    request_id: str, request: Request, principal: BankPage, session: Session
) -> Any:
    """The live quote of the bid form (htmx, as the banker types): advance, discount, net
    proceeds and effective rate of the typed terms, computed by ``pricing.quote``."""
    row = await service.get_request(session, principal, request_id)
    params = request.query_params
    values = {name: str(params.get(name) or "").strip() for name in QUOTE_TERMS}
    if not all(values[name] for name in ("advance_rate", "annual_rate", "fee")):
        figures, errors = None, FormErrors()
    else:
        figures, errors = _quote(request, row, values)
    return render(
        request, "_quote.html", quote=figures, quote_errors=errors, **page_context(request)
    )


@router.post("/requests/{request_id}/offers", response_class=HTMLResponse)
async def place_offer(
    request_id: str,
    request: Request,
    principal: BankPage,
    session: Session,
    client: Ledger,
    config: Config,
) -> Any:
    """A sealed bid; it replaces the bank's active offer on the request, if any."""
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in TERMS}
    row = await service.get_request(session, principal, request_id)
    try:
        expires_at = local_datetime(values["expires_at"])
    except ValueError:
        errors = FormErrors(fields={"expires_at": t(request, "Enter a date and time.")})
        return await request_detail(
            request, session, principal, client, request_id, values=values, errors=errors,
            status_code=422,
        )  # fmt: skip
    try:
        body = _offer_body(row, values, expires_at)
        fee = body.fee.to_money()
        async with session.begin_nested():
            await service.place_offer(
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
    except ValidationError as exc:
        return await request_detail(
            request, session, principal, client, request_id, values=values,
            errors=from_validation(exc, request=request), status_code=422,
        )  # fmt: skip
    except QilianError as exc:
        if isinstance(exc, NotFound):
            raise
        errors = from_problem(exc, [*TERMS, "fee.amount", "fee.currency"], default="annual_rate")
        for nested in ("fee.amount", "fee.currency"):
            if nested in errors.fields:
                errors.fields.setdefault("fee", errors.fields.pop(nested))
        return await request_detail(
            request, session, principal, client, request_id, values=values, errors=errors,
            status_code=exc.status,
        )  # fmt: skip
    return redirect(f"/web/bank/requests/{request_id}?done=offer")


# ---------------------------------------------------------------- my offers


async def offers_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The bank's own offers, newest first, each with its figures as if accepted today."""
    state_param = request.query_params.get("state") or None
    state = OfferState(state_param) if state_param in {s.value for s in OfferState} else None
    query = service.list_offers_query(principal, state)
    rows = list(
        (
            await session.execute(
                query.order_by(col(Offer.created_at).desc(), col(Offer.id)).limit(LIST_SIZE)
            )
        ).scalars()
    )
    requests = {
        r.id: r
        for r in (
            await session.execute(
                select(FinancingRequest).where(
                    col(FinancingRequest.id).in_({o.request_id for o in rows})
                )
            )
        ).scalars()
    }
    ranked = [service.rank(requests[o.request_id], [o], service.today())[0] for o in rows]
    names = await web_repository.names(session, [r.debtor_id for r in requests.values()])
    return render(
        request,
        "bank_offers.html",
        status_code,
        ranked=ranked,
        requests=requests,
        names=names,
        states=[s.value for s in OfferState],
        selected=state.value if state else "",
        errors=errors or FormErrors(),
        done=request.query_params.get("done"),
        **page_context(request),
    )


@router.get("/offers", response_class=HTMLResponse)
async def my_offers(request: Request, principal: BankPage, session: Session) -> Any:
    return await offers_page(request, session, principal)


@router.post("/offers/{offer_id}/withdraw", response_class=HTMLResponse)
async def withdraw_offer(
    offer_id: str, request: Request, principal: BankPage, session: Session
) -> Any:
    form = await request.form()
    try:
        async with session.begin_nested():
            offer = await service.withdraw_offer(session, principal, offer_id)
    except QilianError as exc:
        if isinstance(exc, NotFound):
            raise
        return await offers_page(
            request, session, principal, errors=FormErrors(form=exc.detail), status_code=exc.status
        )
    if form.get("back") == "request":
        return redirect(f"/web/bank/requests/{offer.request_id}?done=withdrawn")
    return redirect(f"/web/bank/offers?done=withdrawn&id={offer_id}")


# ---------------------------------------------------------------- portfolio


def bucket(row: FinancingRecord, today: date) -> str:
    """Where a financing won sits in the portfolio: its state, a funded one split into due
    soon and overdue by its due date (a view, not a state of the marketplace)."""
    if row.state == FinancingState.funded:
        if row.due_date < today:
            return "overdue"
        if row.due_date <= today + timedelta(days=DUE_SOON_DAYS):
            return "due_soon"
    return row.state


BUCKETS: Final = (
    "registering",
    "awaiting_disbursement",
    "overdue",
    "due_soon",
    "funded",
    "repaid",
    "defaulted",
    "lapsed",
    "rolled_back",
)


@router.get("/portfolio", response_class=HTMLResponse)
async def portfolio(request: Request, principal: BankPage, session: Session) -> Any:
    """The financings the bank won, by state: registering, awaiting disbursement (with the
    confirmation form), funded (due soon, overdue), repaid, defaulted, and the closed ones."""
    rows = list(
        (
            await session.execute(
                service.list_financings_query(principal, None)
                .where(col(FinancingRecord.bank_id) == principal.organization_id)
                .order_by(col(FinancingRecord.due_date), col(FinancingRecord.id))
                .limit(LIST_SIZE * 5)
            )
        ).scalars()
    )
    today = datetime.now(UTC).date()
    groups: dict[str, list[FinancingRecord]] = {name: [] for name in BUCKETS}
    for row in rows:
        groups.setdefault(bucket(row, today), []).append(row)
    names = await web_repository.names(
        session, [i for r in rows for i in (r.debtor_id, r.supplier_id)]
    )
    return render(
        request,
        "bank_portfolio.html",
        groups=groups,
        names=names,
        m=lambda minor, currency: Money(minor, currency),
        count=len(rows),
        done=request.query_params.get("done"),
        **page_context(request),
    )
