"""The core firm's pages: the confirmation queue (confirm, reject with a reason, bulk confirm),
the payables calendar, recording a payment. The lineage tree is shared with the other parties
(:mod:`services.api.web.receivables`).

Each form calls the same service as the JSON API (``receivables.lifecycle.confirm``, ``reject``,
``bulk_confirm``, ``record_payment``) and validates its input with the API's request models.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from qilian.kit.money import Money
from services.api.auth.dependencies import Session
from services.api.receivables import lifecycle
from services.api.receivables.lifecycle_router import domain_source, receivable_settings
from services.api.receivables.lifecycle_schemas import (
    ConfirmRequest,
    PaymentRequest,
    RejectRequest,
)
from services.api.receivables.schemas import ReceivablePublic
from services.api.receivables.settings import ReceivableSettings
from services.api.web import repository as web_repository
from services.api.web.receivables import submit_detail_form
from services.api.web.rendering import (
    FormErrors,
    PageRoute,
    from_problem,
    redirect,
    render,
    t,
)
from services.api.web.session import CoreFirmPage

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

Domain = Annotated[lifecycle.DomainSource, Depends(domain_source)]
Vouchers = Annotated[ReceivableSettings, Depends(receivable_settings)]
QUEUE_SIZE: Final = 200
CALENDAR_SIZE: Final = 1000


@router.get("/confirmations", response_class=HTMLResponse)
async def queue(
    request: Request, principal: CoreFirmPage, session: Session, config: Vouchers
) -> Any:
    rows = await web_repository.pending(session, principal.organization_id, QUEUE_SIZE)
    names = await web_repository.names(session, [r.creditor_id for r in rows])
    return render(
        request,
        "confirmations.html",
        rows=[ReceivablePublic.of(r) for r in rows],
        names=names,
        results=None,
        bulk_max=config.bulk_confirm_max,
    )


@router.post("/confirmations/bulk", response_class=HTMLResponse)
async def bulk_confirm(
    request: Request,
    principal: CoreFirmPage,
    session: Session,
    domain: Domain,
    config: Vouchers,
) -> Any:
    """The selected payables, or the whole queue (``all_pending``), each on its own."""
    form = await request.form()
    ids = [str(v) for v in form.getlist("receivable_id") if v]
    everything = form.get("all_pending") == "true"
    if everything:
        ids = await lifecycle.pending_queue(
            session, principal.organization_id, config.bulk_confirm_max
        )
    status = 200
    outcomes: list[lifecycle.BulkOutcome] = []
    errors = FormErrors()
    if not ids:
        errors.fields["receivable_id"] = t(request, "Select at least one payable.")
        status = 422
    elif len(ids) > config.bulk_confirm_max:
        errors.fields["receivable_id"] = t(
            request, "At most %(n)s payables at once.", n=config.bulk_confirm_max
        )
        status = 422
    else:
        outcomes = await lifecycle.bulk_confirm(
            session, principal, [(i, None) for i in ids], domain
        )
    rows = await web_repository.pending(session, principal.organization_id, QUEUE_SIZE)
    names = await web_repository.names(session, [r.creditor_id for r in rows])
    return render(
        request,
        "confirmations.html",
        status,
        rows=[ReceivablePublic.of(r) for r in rows],
        names=names,
        results=outcomes,
        errors=errors,
        bulk_max=config.bulk_confirm_max,
    )


_SIGNATURE_REASONS = ("signature_required", "signature_invalid", "signature_mismatch")


@router.post("/receivables/{receivable_id}/confirm", response_class=HTMLResponse)
async def confirm(
    receivable_id: str,
    request: Request,
    principal: CoreFirmPage,
    session: Session,
    domain: Domain,
) -> Any:
    form = await request.form()
    values = {"signature": str(form.get("signature") or "").strip()}

    async def act() -> None:
        body = ConfirmRequest.model_validate({"signature": values["signature"] or None})
        await lifecycle.confirm(session, principal, receivable_id, body.signature, domain)

    signature = {r: "signature" for r in _SIGNATURE_REASONS}
    done = await submit_detail_form(
        request, session, principal, receivable_id, "confirm", values, act,
        refused=lambda exc: from_problem(exc, ["signature"], by_reason=signature),
    )  # fmt: skip
    if isinstance(done, HTMLResponse):
        return done
    back = form.get("back")
    if back == "queue":
        return redirect(f"/web/confirmations?done=confirm&id={receivable_id}")
    return redirect(f"/web/receivables/{receivable_id}?done=confirm")


@router.post("/receivables/{receivable_id}/reject", response_class=HTMLResponse)
async def reject(
    receivable_id: str, request: Request, principal: CoreFirmPage, session: Session
) -> Any:
    form = await request.form()
    values = {"reason": str(form.get("reason") or "").strip()}

    async def act() -> None:
        body = RejectRequest.model_validate(values)
        await lifecycle.reject(session, principal, receivable_id, body.reason)

    done = await submit_detail_form(
        request, session, principal, receivable_id, "reject", values, act,
        refused=lambda exc: from_problem(exc, ["reason"]),
    )  # fmt: skip
    if isinstance(done, HTMLResponse):
        return done
    return redirect(f"/web/receivables/{receivable_id}?done=reject")


@router.post("/receivables/{receivable_id}/payments", response_class=HTMLResponse)
async def record_payment(
    receivable_id: str, request: Request, principal: CoreFirmPage, session: Session
) -> Any:
    form = await request.form()
    values = {
        "amount": str(form.get("amount") or "").strip(),
        "paid_at": str(form.get("paid_at") or "").strip(),
        "reference": str(form.get("reference") or "").strip(),
        "final": "true" if form.get("final") else "",
    }

    async def act() -> None:
        body = PaymentRequest.model_validate(
            {
                "amount": values["amount"],
                "paid_at": values["paid_at"] or None,
                "reference": values["reference"],
                "final": bool(values["final"]),
            }
        )
        await lifecycle.record_payment(
            session, principal, receivable_id, body.amount, body.paid_at, body.reference,
            body.final,
        )  # fmt: skip

    done = await submit_detail_form(
        request, session, principal, receivable_id, "payment", values, act,
        refused=lambda exc: from_problem(
            exc, ["amount", "paid_at", "reference"], default="amount"
        ),
    )  # fmt: skip
    if isinstance(done, HTMLResponse):
        return done
    return redirect(f"/web/receivables/{receivable_id}?done=payment")


@router.get("/payables", response_class=HTMLResponse)
async def calendar(request: Request, principal: CoreFirmPage, session: Session) -> Any:
    """Confirmed, unsettled payables by month and due day, with each day's total per currency."""
    rows = await web_repository.payables(session, principal.organization_id, CALENDAR_SIZE)
    names = await web_repository.names(session, [r.holder_id for r in rows])
    months: dict[tuple[int, int], dict[date, list[ReceivablePublic]]] = defaultdict(
        lambda: defaultdict(list)
    )
    totals: dict[date, dict[str, Money]] = defaultdict(dict)
    for row in rows:
        months[(row.due_date.year, row.due_date.month)][row.due_date].append(
            ReceivablePublic.of(row)
        )
        day = totals[row.due_date]
        amount = Money(row.open_amount_minor, row.currency)
        day[row.currency] = day[row.currency] + amount if row.currency in day else amount
    return render(
        request,
        "payables.html",
        months=[(date(y, m, 1), dict(days)) for (y, m), days in sorted(months.items())],
        totals=totals,
        names=names,
        today=datetime.now(UTC).date(),
        count=len(rows),
    )
