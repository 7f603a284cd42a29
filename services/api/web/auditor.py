"""The auditor's pages: choose a receivable (any: auditors read every record, as
``GET /v1/receivables/{id}/proof`` allows them) or upload a proof bundle, and see each event's
record, recomputed hashes, proof path, on-chain batch and a VERIFIED or FAILED verdict — for each
event and for the ``prev`` chain — with the ``cast`` commands to check it independently."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from qilian.kit.errors import NotFound
from services.api.auth.dependencies import Session, platform_settings
from services.api.receivables import ledger, repository, service
from services.api.receivables.router import ledger_client
from services.api.receivables.schemas import ReceivablePublic
from services.api.web import verification
from services.api.web.rendering import FormErrors, PageRoute, render, t
from services.api.web.session import AuditorPage, AuditorReading

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

MAX_BUNDLE_BYTES: Final = 2 * 1024 * 1024


def _page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("errors", FormErrors())
    context.setdefault("values", {})
    context.setdefault("audit", None)
    context.setdefault("receivable", None)
    context.setdefault("events", [])
    context.setdefault("not_anchored", False)
    return render(request, "audit.html", status_code, **context)


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, principal: AuditorPage, session: Session) -> Any:
    """The form; with ``?receivable_id=`` the receivable's verification."""
    receivable_id = (request.query_params.get("receivable_id") or "").strip()
    if not receivable_id:
        return _page(request)
    values = {"receivable_id": receivable_id}
    try:
        row = await service.get_visible(session, principal, receivable_id, auditors=True)
    except NotFound:
        errors = FormErrors(fields={"receivable_id": t(request, "There is no such receivable.")})
        return _page(request, 404, errors=errors, values=values)
    events = await repository.events(session, row.id)
    rpc_url = platform_settings(request).rpc_url
    try:
        audit = await verification.audit_receivable(ledger_client(request), row.id, rpc_url)
    except ledger.LedgerUnavailable:
        errors = FormErrors(form=t(request, "The ledger cannot be reached; try again later."))
        return _page(request, 503, errors=errors, values=values)
    return _page(
        request,
        values=values,
        receivable=ReceivablePublic.of(row),
        events=events,
        audit=audit,
        not_anchored=audit is None,
    )


@router.post("/audit/bundles", response_class=HTMLResponse)
async def verify_upload(request: Request, principal: AuditorReading) -> Any:
    """Bundle files the auditor holds (one bundle, a list, or a receivable's proofs)."""
    form = await request.form(max_files=20)
    parts = [p for p in form.getlist("bundle") if isinstance(p, UploadFile) and p.filename]
    if not parts:
        errors = FormErrors(fields={"bundle": t(request, "Choose a proof bundle file.")})
        return _page(request, 422, errors=errors)
    bundles: list[dict[str, Any]] = []
    for part in parts:
        data = await part.read(MAX_BUNDLE_BYTES + 1)
        try:
            if len(data) > MAX_BUNDLE_BYTES:
                raise verification.NoBundle("the file is too large for a proof bundle")
            bundles.extend(verification.parse_upload(data))
        except verification.NoBundle as exc:
            message = t(request, "%(name)s: %(reason)s", name=part.filename, reason=str(exc))
            return _page(request, 422, errors=FormErrors(fields={"bundle": message}))
    rpc_url = platform_settings(request).rpc_url
    settings = platform_settings(request)
    transport = getattr(request.app.state, "ledger_transport", None)
    try:
        report = await verification.verify(settings.ledger_url, transport, bundles)
    except ledger.LedgerUnavailable as exc:
        errors = FormErrors(fields={"bundle": str(exc)})
        return _page(request, 422, errors=errors)
    audit = verification.assemble(None, bundles, report, rpc_url)
    return _page(request, audit=audit)
