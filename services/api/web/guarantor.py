"""The guarantor's pages (融资担保机构): its guarantee programmes with the form to open one, the
financings its programmes cover, and its claims with the form recording a claim's payment.

The form calls :func:`services.api.risk.service.create_programme`, as
``POST /v1/guarantee-programmes`` does, with the input validated by the API's own
``ProgrammeCreate``; the loss shares are typed one field per party (an empty field: the party
bears no share). The reads are the risk module's: ``list_programmes_query`` narrowed to the
guarantor, its covers (``guarantee_covers`` of its own), and ``claims_query`` — what
``GET /v1/risk-claims`` answers a guarantor: its own claims only. Nothing is decided here; a
refusal is placed next to the field it names.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Final

from babel.numbers import format_percent
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit.errors import NotFound, QilianError
from qilian.kit.money import MINOR_UNITS, Money
from services.api.auth.dependencies import Session
from services.api.auth.models import Principal
from services.api.financing.models import FinancingRecord
from services.api.organizations.models import Cluster, Organization, Role
from services.api.risk import service
from services.api.risk.models import ClaimState, GuaranteeCover, GuaranteeProgramme, RiskClaim
from services.api.risk.schemas import ClaimPaymentCreate, ProgrammeCreate
from services.api.web import i18n
from services.api.web import repository as web_repository
from services.api.web.financing import page_context
from services.api.web.i18n import N_
from services.api.web.rendering import (
    VALIDATION_MESSAGES,
    FormErrors,
    PageRoute,
    from_problem,
    from_validation,
    redirect,
    render,
    t,
)
from services.api.web.session import page_roles

router = APIRouter(prefix="/web/guarantor", route_class=PageRoute, include_in_schema=False)

GuarantorPage = Annotated[Principal, Depends(page_roles(Role.guarantor))]

LIST_SIZE: Final = 200
PARTIES: Final = ("guarantor", "bank", "pool", "other")  # the share fields, in this order
FIELDS: Final = (
    "name",
    "currency",
    "max_amount",
    "fee_rate",
    *(f"share_{p}" for p in PARTIES),
    "other_organization_id",
)

# parties and claim states: translated once per language
WORDS: Final = {
    "party:guarantor": N_("guarantor"),
    "party:bank": N_("bank"),
    "party:pool": N_("risk compensation pool"),
    "party:other": N_("other party"),
    "claim:borne": N_("borne by the bank"),
    "claim:raised": N_("raised"),
    "claim:queued": N_("queued"),
    "claim:paid": N_("paid"),
}
DECIMAL_ERRORS: Final = {
    "decimal_parsing": N_("Enter a decimal number such as 0.4."),
    "decimal_type": N_("Enter a decimal number such as 0.4."),
    "greater_than": N_("Enter a number above 0."),
    "greater_than_equal": N_("Enter a number of at least 0."),
    "less_than": N_("Enter a number below 1."),
    "less_than_equal": N_("Enter a number of at most 1."),
}
SHARE_LOCATION: Final = re.compile(r"^loss_shares\[(\d+)\]\.(\w+)$")


@cache
def words(language: str) -> dict[str, str]:
    catalog = i18n.translations(language)
    return {key: catalog.gettext(text) for key, text in WORDS.items()}


def share_formatter(language: str) -> Any:
    """A loss share (``Decimal("0.4")``) as a percentage: ``40%``, every decimal kept (a share
    has at most 10 decimals, a percentage then 8)."""
    locale = i18n.Formats(language).locale

    def share(value: Decimal | str) -> str:
        return format_percent(Decimal(str(value)), "#,##0.########%", locale=locale)

    return share


def context(request: Request) -> dict[str, Any]:
    language = i18n.choose(request)
    return {
        **page_context(request),
        "words": words(language),
        "share": share_formatter(language),
    }


# ---------------------------------------------------------------- programmes


def _default_values() -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(FIELDS, "")
    values.update(currency="CNY", clusters=[], green_only=False)
    return values


async def _programmes(session: AsyncSession, guarantor_id: str) -> list[GuaranteeProgramme]:
    query = service.list_programmes_query(guarantor_id, None)
    result = await session.execute(
        query.order_by(col(GuaranteeProgramme.created_at).desc(), col(GuaranteeProgramme.id)).limit(
            LIST_SIZE
        )
    )
    return list(result.scalars())


async def _other_guarantors(session: AsyncSession, except_id: str) -> list[Organization]:
    """Suggestions for the ``other`` party (a re-guarantor, say); any organisation id is
    accepted and the service checks it."""
    result = await session.execute(
        select(Organization)
        .where(col(Organization.role) == Role.guarantor.value, col(Organization.id) != except_id)
        .order_by(col(Organization.name))
        .limit(LIST_SIZE)
    )
    return list(result.scalars())


async def programmes_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The guarantor's programmes, newest first, and the form to open one."""
    rows = await _programmes(session, principal.organization_id)
    named = [s.get("organization_id") for p in rows for s in p.loss_shares]
    return render(
        request,
        "guarantor_programmes.html",
        status_code,
        rows=rows,
        names=await web_repository.names(session, named),
        m=lambda minor, currency: Money(minor, currency),
        values=values or _default_values(),
        errors=errors or FormErrors(),
        currencies=sorted(MINOR_UNITS),
        clusters=[c.value for c in Cluster],
        parties=PARTIES,
        others=await _other_guarantors(session, principal.organization_id),
        done=request.query_params.get("done"),
        created=request.query_params.get("id"),
        **context(request),
    )


@router.get("", response_class=HTMLResponse)
async def programmes(request: Request, principal: GuarantorPage, session: Session) -> Any:
    return await programmes_page(request, session, principal)


def _shares(values: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The loss shares typed in the form (an empty field: no share), and the form field of
    each line (so an error on ``loss_shares[i]`` lands on its party's field)."""
    shares: list[dict[str, Any]] = []
    fields: list[str] = []
    for party in PARTIES:
        typed = values[f"share_{party}"]
        if not typed:
            continue
        line: dict[str, Any] = {"party": party, "share": typed}
        if party == "other":
            line["organization_id"] = values["other_organization_id"] or None
        shares.append(line)
        fields.append(f"share_{party}")
    if not values["share_other"] and values["other_organization_id"]:
        # an organisation without a share is a mistake the API would not see: say so
        shares.append(
            {"party": "other", "share": "0", "organization_id": values["other_organization_id"]}
        )
        fields.append("share_other")
    return shares, fields


def _field(location: list[str], share_fields: list[str]) -> str:
    """The form field of a location of the API's input (``loss_shares[2].share``,
    ``("loss_shares", 2, "share")``, ``max_amount.amount``, ``fee_rate`` …)."""
    if not location:
        return ""
    head = location[0]
    if head == "loss_shares" and len(location) >= 2 and location[1].isdigit():
        index = int(location[1])
        if len(location) >= 3 and location[2] == "organization_id":
            return "other_organization_id"
        if index < len(share_fields):
            return share_fields[index]
    if head.startswith("loss_shares["):
        found = SHARE_LOCATION.match(head)
        if found:
            return _field(["loss_shares", found.group(1), found.group(2)], share_fields)
    return head.split(".")[0]


def _validation_errors(
    request: Request, exc: ValidationError, share_fields: list[str]
) -> FormErrors:
    errors = FormErrors()
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        name = _field(location, share_fields)
        kind = str(error.get("type"))
        known = VALIDATION_MESSAGES.get(kind) or DECIMAL_ERRORS.get(kind)
        if name == "max_amount" and kind in ("value_error", "decimal_parsing"):
            known = N_("Enter an amount such as 1250.50.")
        message = t(request, known) if known else str(error.get("msg", "invalid"))
        errors.fields.setdefault(name, message)
    return errors


def _problem_errors(exc: QilianError, share_fields: list[str]) -> FormErrors:
    """The service's refusal on the field its ``errors[].field`` names, else on the form."""
    errors = FormErrors()
    known = {*FIELDS, "loss_shares"}
    for item in exc.errors or []:
        name = _field([str(item.get("field", ""))], share_fields)
        if name in known:
            errors.fields.setdefault(name, str(item.get("message") or exc.detail))
    if not errors.fields:
        errors.form = exc.detail
    return errors


@router.post("/programmes", response_class=HTMLResponse)
async def open_programme(request: Request, principal: GuarantorPage, session: Session) -> Any:
    """Opens a programme (``risk.service.create_programme``, the API's input model)."""
    form = await request.form()
    values: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in FIELDS}
    values["clusters"] = [str(c) for c in form.getlist("clusters") if c]
    values["green_only"] = form.get("green_only") == "true"
    shares, share_fields = _shares(values)
    try:
        body = ProgrammeCreate.model_validate(
            {
                "name": values["name"],
                "currency": values["currency"] or "CNY",
                "max_amount": (
                    {"amount": values["max_amount"], "currency": values["currency"] or "CNY"}
                    if values["max_amount"]
                    else None
                ),
                "clusters": values["clusters"],
                "green_only": values["green_only"],
                "fee_rate": values["fee_rate"],
                "loss_shares": shares,
            }
        )
    except ValidationError as exc:
        errors = _validation_errors(request, exc, share_fields)
        if not shares:
            errors.fields["loss_shares"] = t(request, "Give the guarantor's share at least.")
        return await programmes_page(
            request, session, principal, values=values, errors=errors, status_code=422
        )
    try:
        async with session.begin_nested():
            created = await service.create_programme(session, principal, body.terms())
    except QilianError as exc:
        return await programmes_page(
            request, session, principal, values=values,
            errors=_problem_errors(exc, share_fields), status_code=exc.status,
        )  # fmt: skip
    return redirect(f"/web/guarantor?done=created&id={created.id}")


# ---------------------------------------------------------------- covers


@router.get("/covers", response_class=HTMLResponse)
async def covers(request: Request, principal: GuarantorPage, session: Session) -> Any:
    """The financings the guarantor's programmes cover, newest first: the covered amount, its
    own loss share (frozen at acceptance), the guarantee fee and the financing's state."""
    result = await session.execute(
        select(GuaranteeCover, FinancingRecord)
        .join(FinancingRecord, col(FinancingRecord.id) == col(GuaranteeCover.financing_id))
        .where(col(GuaranteeCover.guarantor_id) == principal.organization_id)
        .order_by(col(GuaranteeCover.attached_at).desc(), col(GuaranteeCover.financing_id))
        .limit(LIST_SIZE)
    )
    rows = [(cover, financing) for cover, financing in result.all()]
    programme_ids = sorted({cover.programme_id for cover, _ in rows})
    names_of = {}
    if programme_ids:
        found = await session.execute(
            select(col(GuaranteeProgramme.id), col(GuaranteeProgramme.name)).where(
                col(GuaranteeProgramme.id).in_(programme_ids)
            )
        )
        names_of = {pid: name for pid, name in found.all()}
    own_share = {
        cover.financing_id: next(
            (s["share"] for s in cover.loss_shares if s["party"] == "guarantor"), None
        )
        for cover, _ in rows
    }
    return render(
        request,
        "guarantor_covers.html",
        rows=rows,
        own_share=own_share,
        programme_names=names_of,
        names=await web_repository.names(session, [f.bank_id for _, f in rows]),
        **context(request),
    )


# ---------------------------------------------------------------- claims


async def claims_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    failed: str | None = None,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The guarantor's claims (as ``GET /v1/risk-claims`` answers it: its own), newest first;
    ``?state=`` narrows them. Each of its ``raised`` claims has the form recording its payment;
    ``failed`` is the claim whose form comes back with ``errors``."""
    wanted = request.query_params.get("state") or None
    states = [s.value for s in ClaimState]
    state = ClaimState(wanted) if wanted in states else None
    query = service.claims_query(principal, state)
    result = await session.execute(
        query.order_by(col(RiskClaim.raised_at).desc(), col(RiskClaim.id)).limit(LIST_SIZE)
    )
    rows = list(result.scalars())
    return render(
        request,
        "guarantor_claims.html",
        status_code,
        rows=rows,
        names=await web_repository.names(session, [c.bank_id for c in rows]),
        m=lambda minor, currency: Money(minor, currency),
        states=states,
        selected=state.value if state else "",
        payable={
            c.id
            for c in rows
            if c.state == ClaimState.raised and c.organization_id == principal.organization_id
        },
        failed=failed,
        errors=errors or FormErrors(),
        values=values or {},
        done=request.query_params.get("done"),
        paid=request.query_params.get("id"),
        **context(request),
    )


@router.get("/claims", response_class=HTMLResponse)
async def claims(request: Request, principal: GuarantorPage, session: Session) -> Any:
    return await claims_page(request, session, principal)


@router.post("/claims/{claim_id}/payment", response_class=HTMLResponse)
async def pay_claim(
    claim_id: str, request: Request, principal: GuarantorPage, session: Session
) -> Any:
    """Records paying a ``raised`` claim to its bank (``risk.service.record_claim_payment`` with
    the API's ``ClaimPaymentCreate``): the form sends the open amount its row showed, so a claim
    changed meanwhile is refused rather than paid with another amount."""
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in ("reference", "amount")}
    currency = str(form.get("currency") or "")
    try:
        body = ClaimPaymentCreate.model_validate(
            {
                "amount": {"amount": values["amount"], "currency": currency},
                "reference": values["reference"],
            }
        )
        async with session.begin_nested():
            await service.record_claim_payment(
                session, principal, claim_id, body.amount.to_money(), body.reference
            )
    except ValidationError as exc:
        errors, status = from_validation(exc, request=request), 422
    except NotFound:
        raise
    except QilianError as exc:
        errors, status = from_problem(exc, ["reference"]), exc.status
    else:
        return redirect(f"/web/guarantor/claims?done=paid&id={claim_id}")
    if set(errors.fields) - {"reference"}:  # the amount the row showed: not the field's fault
        errors.form = errors.form or next(
            message for name, message in errors.fields.items() if name != "reference"
        )
    return await claims_page(
        request, session, principal, failed=claim_id, errors=errors, values=values,
        status_code=status,
    )  # fmt: skip
