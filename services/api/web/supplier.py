"""The supplier's pages: upload invoices (several files at once, drag and drop, bulk imports with
their progress, each file's outcome with the reason of a refusal), and the split, transfer and
cancel forms of a receivable it holds.

Each form calls the same service as the JSON API (``invoices.service.intake``,
``invoices.imports.submit``, ``receivables.lifecycle.split/transfer/cancel``) and validates its
input with the API's own request models; a refusal is shown next to the field it concerns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import UploadFile

from qilian.kit.errors import NotFound, QilianError
from services.api.auth.dependencies import Session, platform_settings
from services.api.invoices import imports, tasks
from services.api.invoices import repository as invoices_repository
from services.api.invoices import service as invoices_service
from services.api.invoices.blobs import BlobStore
from services.api.invoices.parsing import DEFAULT_LIMITS
from services.api.invoices.router import get_store, intake_settings
from services.api.invoices.schemas import ImportPublic
from services.api.invoices.settings import IntakeSettings
from services.api.receivables import lifecycle
from services.api.receivables.lifecycle_router import receivable_settings
from services.api.receivables.lifecycle_schemas import RejectRequest, SplitRequest, TransferRequest
from services.api.receivables.settings import ReceivableSettings
from services.api.web.receivables import submit_detail_form
from services.api.web.rendering import (
    FormErrors,
    PageRoute,
    from_problem,
    is_fragment,
    redirect,
    render,
    t,
)
from services.api.web.session import SupplierPage

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

Config = Annotated[IntakeSettings, Depends(intake_settings)]
Store = Annotated[BlobStore, Depends(get_store)]
Vouchers = Annotated[ReceivableSettings, Depends(receivable_settings)]

BULK_SUFFIXES: Final = (".zip", ".csv", ".ndjson", ".jsonl")
MAX_FILES: Final = 100


@dataclass(frozen=True)
class FileOutcome:
    """One uploaded file: ``created``, ``diluted``, ``import`` (a bulk job) or ``refused``."""

    name: str
    outcome: str
    receivable_id: str | None = None
    import_id: str | None = None
    reason: str | None = None
    detail: str | None = None


@router.get("/invoices", response_class=HTMLResponse)
async def upload_page(request: Request, principal: SupplierPage, config: Config) -> Any:
    return render(
        request,
        "upload.html",
        results=[],
        max_bytes=DEFAULT_LIMITS.max_upload_bytes,
        max_import_bytes=config.max_import_bytes,
    )


async def _one(
    request: Request,
    session: Session,
    uploader: invoices_service.Uploader,
    part: UploadFile,
    config: IntakeSettings,
    store: BlobStore,
    jobs: list[str],
) -> FileOutcome:
    name = part.filename or "—"
    bulk = name.lower().endswith(BULK_SUFFIXES)
    limit = config.max_import_bytes if bulk else DEFAULT_LIMITS.max_upload_bytes
    data = await part.read(limit + 1)
    if len(data) > limit:
        detail = t(request, "The file is larger than %(limit)s bytes.", limit=limit)
        return FileOutcome(name, "refused", reason="too_large", detail=detail)
    try:
        async with session.begin_nested():
            if bulk:
                job, _ = await imports.submit(
                    session, uploader.id, uploader.audit_actor, data, store=store, config=config
                )
                if job.status in ("queued", "running"):
                    jobs.append(job.id)
                return FileOutcome(name, "import", import_id=job.id)
            result = await invoices_service.intake(
                session,
                uploader,
                data,
                store=store,
                config=config,
                content_type=part.content_type,
            )
    except QilianError as exc:
        reason = exc.extra.get("reason")
        return FileOutcome(
            name,
            "refused",
            receivable_id=exc.extra.get("receivable_id"),
            reason=reason if isinstance(reason, str) else exc.slug,
            detail=exc.detail,
        )
    return FileOutcome(name, result.outcome, receivable_id=result.receivable.id)


@router.post("/invoices", response_class=HTMLResponse)
async def upload(
    request: Request, principal: SupplierPage, session: Session, config: Config, store: Store
) -> Any:
    """Every file of the form on its own: one refused file never undoes the others. ZIP, CSV and
    NDJSON files become bulk imports, whose progress the page then follows."""
    form = await request.form(max_files=MAX_FILES)
    parts = [p for p in form.getlist("files") if isinstance(p, UploadFile) and p.filename]
    if not parts:
        errors = FormErrors(fields={"files": t(request, "Choose at least one file.")})
        return render(
            request,
            "upload.html",
            422,
            results=[],
            errors=errors,
            max_bytes=DEFAULT_LIMITS.max_upload_bytes,
            max_import_bytes=config.max_import_bytes,
        )
    uploader = await invoices_service.uploader_of(session, principal)
    jobs: list[str] = []
    results = [await _one(request, session, uploader, p, config, store, jobs) for p in parts]
    # a job must be committed before a worker can pick it up (as POST /v1/invoice-imports)
    await session.commit()
    for job_id in jobs:
        dispatcher = getattr(request.app.state, "import_dispatcher", None)
        if dispatcher is not None:
            dispatcher(job_id)
        else:
            tasks.dispatch(platform_settings(request), job_id)
    # nothing accepted: the status of a refusal (as the API's), and the refusal is audited
    status = 422 if all(r.outcome == "refused" for r in results) else 200
    return render(
        request,
        "_upload_results.html" if is_fragment(request) else "upload.html",
        status,
        results=results,
        max_bytes=DEFAULT_LIMITS.max_upload_bytes,
        max_import_bytes=config.max_import_bytes,
    )


@router.get("/imports/{import_id}", response_class=HTMLResponse)
async def import_progress(
    import_id: str, request: Request, principal: SupplierPage, session: Session
) -> Any:
    """A bulk import's progress (polled by the upload page until it ends) and each row's
    outcome, as ``GET /v1/invoice-imports/{id}``."""
    job = await invoices_repository.get_import(session, import_id)
    if job is None or job.organization_id != principal.organization_id:
        raise NotFound(f"there is no import {import_id}")
    rows = await invoices_repository.rows_page(session, job.id, 0, 1000)
    counts = await invoices_repository.count_rows(session, job.id)
    public = ImportPublic.of(job, counts, rows, None)
    template = "_import_progress.html" if is_fragment(request) else "import.html"
    return render(request, template, job=public)


# ---------------------------------------------------------------- vouchers


def _amounts(text: str) -> list[dict[str, str]]:
    """One amount per line (or separated by commas or spaces)."""
    return [{"amount": a} for a in text.replace(",", " ").split() if a]


@router.post("/receivables/{receivable_id}/split", response_class=HTMLResponse)
async def split(
    receivable_id: str,
    request: Request,
    principal: SupplierPage,
    session: Session,
    config: Vouchers,
) -> Any:
    form = await request.form()
    text = str(form.get("parts") or "")
    values = {"parts": text}

    async def act() -> None:
        body = SplitRequest.model_validate({"parts": _amounts(text)})
        await lifecycle.split(
            session, principal, receivable_id, [p.amount for p in body.parts], config
        )

    done = await submit_detail_form(
        request, session, principal, receivable_id, "split", values, act,
        refused=lambda exc: from_problem(exc, ["parts"], default="parts"),
        invalid=lambda errors: FormErrors(fields={"parts": next(iter(errors.fields.values()))}),
    )  # fmt: skip
    if isinstance(done, HTMLResponse):
        return done
    return redirect(f"/web/receivables/{receivable_id}?done=split")


@router.post("/receivables/{receivable_id}/transfer", response_class=HTMLResponse)
async def transfer(
    receivable_id: str,
    request: Request,
    principal: SupplierPage,
    session: Session,
    config: Vouchers,
) -> Any:
    form = await request.form()
    values = {
        "to_organization_id": str(form.get("to_organization_id") or ""),
        "amount": str(form.get("amount") or "").strip(),
    }

    async def act() -> lifecycle.TransferOutcome:
        body = TransferRequest.model_validate(
            {"to_organization_id": values["to_organization_id"], "amount": values["amount"] or None}
        )
        return await lifecycle.transfer(
            session, principal, receivable_id, body.to_organization_id, body.amount, config
        )

    def refused(exc: QilianError) -> FormErrors:
        return from_problem(
            exc,
            ["to_organization_id", "amount"],
            by_reason={"amount_exceeds_open_amount": "amount", "too_deep": "amount"},
            default="amount" if "amount" in exc.detail else "to_organization_id",
        )

    outcome = await submit_detail_form(
        request, session, principal, receivable_id, "transfer", values, act, refused
    )
    if isinstance(outcome, HTMLResponse):
        return outcome
    return redirect(f"/web/receivables/{receivable_id}?done=transfer&part={outcome.transferred.id}")


@router.post("/receivables/{receivable_id}/cancel", response_class=HTMLResponse)
async def cancel(
    receivable_id: str, request: Request, principal: SupplierPage, session: Session
) -> Any:
    form = await request.form()
    values = {"reason": str(form.get("reason") or "").strip()}

    async def act() -> None:
        body = RejectRequest.model_validate(values)
        await lifecycle.cancel(session, principal, receivable_id, body.reason)

    done = await submit_detail_form(
        request, session, principal, receivable_id, "cancel", values, act,
        refused=lambda exc: from_problem(exc, ["reason"]),
    )  # fmt: skip
    if isinstance(done, HTMLResponse):
        return done
    return redirect(f"/web/receivables/{receivable_id}?done=cancel")
