"""The supplier's financing pages: ask banks to finance confirmed receivables (one, or several with
the same debtor, currency and due date), follow its requests, compare the ranked offers (net
proceeds, effective rate, advance, discount, fee, day count, recourse), accept one or cancel the
request; and the page of one financing, shared by its parties (the bank confirms its
disbursement there, :mod:`.bank`).

Every form calls the same service as the JSON API (``financing.service.create_request``,
``cancel_request``, ``accept_offer``, ``record_disbursement``) and validates its input with the
API's own request models (``RequestCreate``, ``DisbursementCreate``); the ranking and the figures
are the service's ``rank`` and ``pricing.quote``. Authorisation is the service's: another
organisation's request or financing is the 404 page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Final

from babel.numbers import format_percent
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit.errors import NotFound, QilianError
from qilian.kit.money import Money
from services.api.auth.dependencies import Session
from services.api.auth.models import Principal
from services.api.financing import service
from services.api.financing.models import (
    FinancingRecord,
    FinancingRequest,
    Offer,
    OfferState,
    Recourse,
    RegistryOperation,
)
from services.api.financing.router import financing_settings
from services.api.financing.schemas import DisbursementCreate, RequestCreate
from services.api.financing.settings import FinancingSettings
from services.api.organizations.models import Role
from services.api.receivables import repository as receivables_repository
from services.api.receivables.models import Receivable
from services.api.web import i18n
from services.api.web import repository as web_repository
from services.api.web.i18n import N_
from services.api.web.rendering import (
    FormErrors,
    PageRoute,
    from_problem,
    from_validation,
    is_fragment,
    redirect,
    render,
    t,
)
from services.api.web.session import SupplierPage, page_roles

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

Config = Annotated[FinancingSettings, Depends(financing_settings)]
FinancingPartyPage = Annotated[
    Principal,
    Depends(page_roles(Role.supplier, Role.bank, Role.core_firm, Role.guarantor)),
]

LIST_SIZE: Final = 200
ELIGIBLE_SIZE: Final = 500
DEFAULT_AUCTION: Final = timedelta(days=3)

# states of requests, offers and financings, and the recourse choices: translated once per
# language (the receivables' axes have their own labels in :mod:`.i18n`)
LABELS: Final = {
    "open": N_("open for bids"),
    "accepted": N_("accepted"),
    "funded": N_("funded"),
    "repaid": N_("repaid"),
    "defaulted": N_("defaulted"),
    "cancelled": N_("cancelled"),
    "expired": N_("expired"),
    "lapsed": N_("lapsed"),
    "rolled_back": N_("rolled back"),
    "active": N_("active"),
    "withdrawn": N_("withdrawn"),
    "lost": N_("lost"),
    "replaced": N_("replaced"),
    "registering": N_("registering on chain"),
    "awaiting_disbursement": N_("awaiting disbursement"),
    "due_soon": N_("due soon"),
    "overdue": N_("overdue"),
    "any": N_("either"),
    "recourse": N_("with recourse"),
    "non_recourse": N_("without recourse"),
    "pending": N_("pending"),
    "done": N_("done"),
    "refused": N_("refused"),
    "register": N_("register"),
    "release": N_("release"),
    "cluster:pv": N_("photovoltaic manufacturing"),
    "cluster:lithium": N_("lithium energy storage"),
    "cluster:alloy": N_("alloy materials"),
    "cluster:chemicals": N_("specialty chemical new materials"),
    "cluster:bio": N_("biomedicine and plateau bio-resources"),
}


@cache
def labels(language: str) -> dict[str, str]:
    catalog = i18n.translations(language)
    return {key: catalog.gettext(text) for key, text in LABELS.items()}


def rate_formatter(language: str) -> Any:
    """``rate(Decimal("0.0385"))`` → ``3.85%``: rates as percentages in the page's language."""
    locale = i18n.Formats(language).locale

    def rate(value: Decimal | None) -> str:
        if value is None:
            return ""
        return format_percent(value, "#,##0.00##%", locale=locale)

    return rate


def page_context(request: Request) -> dict[str, Any]:
    """What every financing template uses: state labels and the rate format."""
    language = i18n.choose(request)
    return {"labels": labels(language), "rate": rate_formatter(language)}


def local_datetime(value: str) -> datetime | None:
    """A ``datetime-local`` field (China Standard Time, as the pages show times); None if
    empty. ``ValueError`` when it is not a date and time."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=i18n.TIMEZONE)
    return parsed


def local_input(value: datetime) -> str:
    """A time as a ``datetime-local`` field shows it (China Standard Time, minutes)."""
    return value.astimezone(i18n.TIMEZONE).strftime("%Y-%m-%dT%H:%M")


def money(minor: int, currency: str) -> Money:
    return Money(minor, currency)


# ---------------------------------------------------------------- reads


async def _eligible(session: AsyncSession, org: str) -> list[Receivable]:
    """Confirmed receivables the supplier holds and that are in no auction or financing: the
    candidates of the form (the service decides; it refuses the others with their reason)."""
    query = receivables_repository.list_query(
        org, as_party="holder", confirmation="confirmed", holding="held", financing="unfinanced"
    )
    result = await session.execute(
        query.order_by(
            col(Receivable.debtor_id), col(Receivable.due_date), col(Receivable.id)
        ).limit(ELIGIBLE_SIZE)
    )
    return list(result.scalars())


def _groups(rows: list[Receivable]) -> list[tuple[tuple[str, str, date], list[Receivable]]]:
    """Receivables that may share a request: same debtor, currency and due date."""
    groups: dict[tuple[str, str, date], list[Receivable]] = {}
    for row in rows:
        groups.setdefault((row.debtor_id, row.currency, row.due_date), []).append(row)
    return list(groups.items())


async def _new_form(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    values: dict[str, Any],
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    rows = await _eligible(session, principal.organization_id)
    names = await web_repository.names(session, [r.debtor_id for r in rows])
    return render(
        request,
        "financing_new.html",
        status_code,
        groups=_groups(rows),
        names=names,
        values=values,
        errors=errors or FormErrors(),
        recourse_choices=[r.value for r in Recourse],
        **page_context(request),
    )


async def _items(session: AsyncSession, request_id: str) -> list[tuple[Any, Receivable]]:
    items = await service.items_of(session, request_id)
    out = []
    for item in items:
        row = await session.get(Receivable, item.receivable_id)
        assert row is not None
        out.append((item, row))
    return out


async def request_detail(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    request_id: str,
    *,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The requester's page of one request: its receivables and every offer, the active ones
    ranked (as ``GET /v1/financing-requests/{id}/offers`` for the requester)."""
    row = await service.get_request(session, principal, request_id)
    if row.requester_id != principal.organization_id:
        raise NotFound(f"there is no financing request {request_id}")
    ranked = service.rank(row, await service.offers_for(session, principal, row), service.today())
    items = await _items(session, row.id)
    financing = (
        await session.execute(
            select(FinancingRecord).where(col(FinancingRecord.request_id) == row.id)
        )
    ).scalar_one_or_none()
    names = await web_repository.names(session, [row.debtor_id, *(r.offer.bank_id for r in ranked)])
    return render(
        request,
        "financing_request.html",
        status_code,
        r=row,
        open=service.is_open(row),
        face_value=service.face_value(row),
        items=items,
        ranked=ranked,
        financing=financing,
        names=names,
        errors=errors or FormErrors(),
        done=request.query_params.get("done"),
        **page_context(request),
    )


# ---------------------------------------------------------------- supplier pages


@router.get("/financing", response_class=HTMLResponse)
async def my_requests(request: Request, principal: SupplierPage, session: Session) -> Any:
    """The supplier's financing requests with their states, and its financings."""
    query = service.list_requests_query(principal, None)
    rows = list(
        (
            await session.execute(
                query.order_by(col(FinancingRequest.created_at).desc()).limit(LIST_SIZE)
            )
        ).scalars()
    )
    active = await _active_counts(session, [r.id for r in rows])
    financings = list(
        (
            await session.execute(
                service.list_financings_query(principal, None)
                .where(col(FinancingRecord.supplier_id) == principal.organization_id)
                .order_by(col(FinancingRecord.accepted_at).desc())
                .limit(LIST_SIZE)
            )
        ).scalars()
    )
    names = await web_repository.names(
        session, [r.debtor_id for r in rows] + [f.bank_id for f in financings]
    )
    return render(
        request,
        "financing_requests.html",
        rows=rows,
        active=active,
        financings=financings,
        names=names,
        done=request.query_params.get("done"),
        **page_context(request),
    )


async def _active_counts(session: AsyncSession, request_ids: list[str]) -> dict[str, int]:
    if not request_ids:
        return {}
    counted = await session.execute(
        select(col(Offer.request_id), func.count())
        .where(col(Offer.request_id).in_(request_ids), col(Offer.state) == OfferState.active.value)
        .group_by(col(Offer.request_id))
    )
    return {rid: int(n) for rid, n in counted.all()}


@router.get("/financing/new", response_class=HTMLResponse)
async def new_request(request: Request, principal: SupplierPage, session: Session) -> Any:
    """The "request financing" form; ``?receivable_id=`` preselects receivables."""
    chosen = [v for v in request.query_params.getlist("receivable_id") if v]
    values = {
        "receivable_ids": chosen,
        "closes_at": local_input(service.now() + DEFAULT_AUCTION),
        "min_advance_rate": "",
        "recourse": Recourse.any.value,
    }
    return await _new_form(request, session, principal, values=values)


@router.post("/financing/requests", response_class=HTMLResponse)
async def create_request(
    request: Request, principal: SupplierPage, session: Session, config: Config
) -> Any:
    form = await request.form()
    values: dict[str, Any] = {
        "receivable_ids": [str(v) for v in form.getlist("receivable_ids") if v],
        "closes_at": str(form.get("closes_at") or "").strip(),
        "min_advance_rate": str(form.get("min_advance_rate") or "").strip(),
        "recourse": str(form.get("recourse") or Recourse.any.value),
    }
    errors = FormErrors()
    closes_at: datetime | None = None
    try:
        closes_at = local_datetime(values["closes_at"])
    except ValueError:
        errors.fields["closes_at"] = t(request, "Enter a date and time.")
    if closes_at is None and "closes_at" not in errors.fields:
        errors.fields["closes_at"] = t(request, "Enter when the auction closes.")
    if not values["receivable_ids"]:
        errors.fields["receivable_ids"] = t(request, "Choose at least one receivable.")
    try:
        body = RequestCreate.model_validate(
            {
                "receivable_ids": values["receivable_ids"] or ["-"],
                "closes_at": closes_at or service.now(),
                "min_advance_rate": values["min_advance_rate"] or None,
                "recourse": values["recourse"],
            }
        )
    except ValidationError as exc:
        for name, message in from_validation(exc, request=request).fields.items():
            errors.fields.setdefault(name, message)
    if errors:
        return await _new_form(
            request, session, principal, values=values, errors=errors, status_code=422
        )
    try:
        async with session.begin_nested():
            created, _ = await service.create_request(
                session,
                principal,
                body.receivable_ids,
                body.closes_at,
                body.min_advance_rate,
                body.recourse,
                config,
            )
    except QilianError as exc:
        errors = from_problem(
            exc,
            ["receivable_ids", "closes_at", "min_advance_rate", "recourse"],
            by_reason={
                reason: "receivable_ids"
                for reason in (
                    "not_confirmed",
                    "not_held",
                    "disputed",
                    "in_auction",
                    "financed",
                    "overdue",
                    "settled",
                    "nothing_open",
                )
            },
            default="receivable_ids",
        )
        if exc.status in (403, 404) and not errors.fields:
            errors = FormErrors(fields={"receivable_ids": exc.detail})
        return await _new_form(
            request, session, principal, values=values, errors=errors, status_code=exc.status
        )
    return redirect(f"/web/financing/requests/{created.id}?done=created")


@router.get("/financing/requests/{request_id}", response_class=HTMLResponse)
async def request_page(
    request_id: str, request: Request, principal: SupplierPage, session: Session
) -> Any:
    return await request_detail(request, session, principal, request_id)


@router.post("/financing/requests/{request_id}/cancel", response_class=HTMLResponse)
async def cancel_request(
    request_id: str, request: Request, principal: SupplierPage, session: Session
) -> Any:
    try:
        async with session.begin_nested():
            await service.cancel_request(session, principal, request_id)
    except QilianError as exc:
        if isinstance(exc, NotFound):
            raise
        return await request_detail(
            request, session, principal, request_id,
            errors=FormErrors(form=exc.detail), status_code=exc.status,
        )  # fmt: skip
    return redirect(f"/web/financing/requests/{request_id}?done=cancelled")


@router.post("/financing/offers/{offer_id}/accept", response_class=HTMLResponse)
async def accept_offer(
    offer_id: str, request: Request, principal: SupplierPage, session: Session, config: Config
) -> Any:
    """The requester accepts one active offer (exactly one ever wins): the financing page."""
    offer = await service.get_offer(session, principal, offer_id)
    try:
        async with session.begin_nested():
            financing = await service.accept_offer(session, principal, offer_id, config)
    except QilianError as exc:
        if isinstance(exc, NotFound):
            raise
        errors = FormErrors(form=exc.detail)
        return await request_detail(
            request, session, principal, offer.request_id, errors=errors, status_code=exc.status
        )
    return redirect(f"/web/financings/{financing.id}?done=accepted")


# ---------------------------------------------------------------- one financing


async def financing_detail(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    financing_id: str,
    *,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """One financing for its parties (as ``GET /v1/financings/{id}``), with the bank's
    disbursement form once the registration on chain is done."""
    row = await service.get_financing(session, principal, financing_id)
    ops = (
        await session.execute(
            select(RegistryOperation)
            .where(col(RegistryOperation.financing_id) == row.id)
            .order_by(col(RegistryOperation.created_at), col(RegistryOperation.operation_id))
        )
    ).scalars()
    receivable_ids = [i.receivable_id for i in await service.items_of(session, row.request_id)]
    names = await web_repository.names(session, [row.bank_id, row.supplier_id, row.debtor_id])
    template = "_financing.html" if is_fragment(request) else "financing.html"
    return render(
        request,
        template,
        status_code,
        f=row,
        m=lambda minor: money(minor, row.currency),
        registry=list(ops),
        receivable_ids=receivable_ids,
        names=names,
        is_bank=row.bank_id == principal.organization_id,
        is_supplier=row.supplier_id == principal.organization_id,
        errors=errors or FormErrors(),
        values=values or {},
        done=request.query_params.get("done"),
        today=datetime.now(UTC).date(),
        **page_context(request),
    )


@router.get("/financings/{financing_id}", response_class=HTMLResponse)
async def financing_page(
    financing_id: str, request: Request, principal: FinancingPartyPage, session: Session
) -> Any:
    """The financing (``registering`` → ``awaiting_disbursement`` → ``funded`` …); while it is
    registering, htmx polls this page's fragment until the ledger's answer arrives."""
    return await financing_detail(request, session, principal, financing_id)


@router.post("/financings/{financing_id}/disbursement", response_class=HTMLResponse)
async def record_disbursement(
    financing_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(page_roles(Role.bank))],
    session: Session,
) -> Any:
    """The bank confirms it paid the net proceeds (→ ``funded``)."""
    form = await request.form()
    values = {
        "reference": str(form.get("reference") or "").strip(),
        "amount": str(form.get("amount") or "").strip(),
    }
    row = await service.get_financing(session, principal, financing_id)
    try:
        body = DisbursementCreate.model_validate(
            {
                "reference": values["reference"],
                "amount": (
                    {"amount": values["amount"], "currency": row.currency}
                    if values["amount"]
                    else None
                ),
            }
        )
        async with session.begin_nested():
            await service.record_disbursement(
                session,
                principal,
                financing_id,
                body.reference,
                body.amount.to_money() if body.amount is not None else None,
            )
    except ValidationError as exc:
        errors = from_validation(exc, request=request)
        return await financing_detail(
            request, session, principal, financing_id, errors=errors, values=values,
            status_code=422,
        )  # fmt: skip
    except QilianError as exc:
        if isinstance(exc, NotFound):
            raise
        errors = from_problem(exc, ["reference", "amount"], default="amount")
        return await financing_detail(
            request, session, principal, financing_id, errors=errors, values=values,
            status_code=exc.status,
        )  # fmt: skip
    if form.get("back") == "portfolio":
        return redirect(f"/web/bank/portfolio?done=funded&id={financing_id}")
    return redirect(f"/web/financings/{financing_id}?done=funded")
