"""HTTP side of invoice intake: one invoice (multipart ``file`` or the body itself, e.g. JSON),
its dry run, bulk imports, and a core firm's payment terms."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from starlette.datastructures import UploadFile

from qilian.kit.errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from services.api.audit import service as audit
from services.api.auth.dependencies import (
    CurrentPrincipal,
    Session,
    platform_settings,
    require_roles,
)
from services.api.auth.models import Principal
from services.api.auth.pagination import Cursor, decode_cursor, encode_cursor
from services.api.invoices import imports, repository, service, tasks
from services.api.invoices.blobs import BlobStore, blob_store
from services.api.invoices.parsing import DEFAULT_LIMITS
from services.api.invoices.schemas import ImportPublic, InvoiceCreated, PaymentTerms
from services.api.invoices.settings import IntakeSettings, get_intake_settings
from services.api.organizations.models import Organization, Role
from services.api.receivables.schemas import ReceivablePublic

router = APIRouter(tags=["invoices"])

Supplier = Annotated[Principal, Depends(require_roles(Role.supplier))]

_FILE_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        }
    }
}


def intake_settings(request: Request) -> IntakeSettings:
    config = getattr(request.app.state, "intake_settings", None)
    return config if isinstance(config, IntakeSettings) else get_intake_settings()


def get_store(request: Request) -> BlobStore:
    store = getattr(request.app.state, "blob_store", None)
    if store is not None:
        return store  # type: ignore[no-any-return]
    return blob_store(platform_settings(request), intake_settings(request))


Config = Annotated[IntakeSettings, Depends(intake_settings)]
Store = Annotated[BlobStore, Depends(get_store)]


async def read_upload(request: Request, limit: int) -> tuple[bytes, str | None]:
    """The uploaded bytes and their declared type: the multipart ``file`` part, else the body."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise PayloadTooLarge(
            f"uploads are limited to {limit} bytes", extra={"reason": "too_large"}
        )
    content_type = request.headers.get("content-type")
    if content_type and content_type.lower().startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InvalidInput(
                "send the invoice as the multipart part 'file'",
                errors=[{"field": "file", "in": "body", "message": "required"}],
            )
        data = await part.read(limit + 1)
        content_type = part.content_type
    else:
        data = await request.body()
    if len(data) > limit:
        raise PayloadTooLarge(
            f"uploads are limited to {limit} bytes", extra={"reason": "too_large"}
        )
    return data, content_type


@router.post("/v1/invoices/parse", openapi_extra=_FILE_BODY)
async def parse_invoice(
    request: Request, principal: Supplier, session: Session, config: Config
) -> dict[str, Any]:
    """Dry run: the normalised fields and every warning (business findings included); nothing is
    stored. ``422``/``413``/``415`` only when the document itself is unreadable or invalid."""
    data, content_type = await read_upload(request, DEFAULT_LIMITS.max_upload_bytes)
    uploader = await service.uploader_of(session, principal)
    return await service.dry_run(session, uploader, data, config=config, content_type=content_type)


@router.post(
    "/v1/invoices",
    status_code=status.HTTP_201_CREATED,
    response_model=InvoiceCreated,
    openapi_extra=_FILE_BODY,
    responses={409: {"description": "duplicate (problem+json, receivable_id for its parties)"}},
)
async def upload_invoice(
    request: Request, principal: Supplier, session: Session, config: Config, store: Store
) -> InvoiceCreated:
    """Upload one invoice: ``201`` with the parsed invoice and the receivable it created (a
    credit note dilutes the receivable of the invoice it references)."""
    data, content_type = await read_upload(request, DEFAULT_LIMITS.max_upload_bytes)
    uploader = await service.uploader_of(session, principal)
    result = await service.intake(
        session, uploader, data, store=store, config=config, content_type=content_type
    )
    invoice = {
        "id": result.invoice.id,
        "sha256": result.invoice.sha256,
        "fingerprint": result.invoice.fingerprint,
        **result.parsed.to_json(),
    }
    return InvoiceCreated(
        outcome=result.outcome,
        invoice=invoice,
        receivable=ReceivablePublic.of(result.receivable),
        event_id=result.event.event_id,
    )


@router.post(
    "/v1/invoice-imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportPublic,
    openapi_extra=_FILE_BODY,
)
async def submit_import(
    request: Request, principal: Supplier, session: Session, config: Config, store: Store
) -> ImportPublic:
    """Bulk upload (a ZIP of invoice files, a CSV or NDJSON): ``202`` with the job. The same
    import submitted again by the same organisation is the same job."""
    data, _ = await read_upload(request, config.max_import_bytes)
    uploader = await service.uploader_of(session, principal)
    job, _created = await imports.submit(
        session, uploader.id, uploader.audit_actor, data, store=store, config=config
    )
    # the job must be visible before a worker picks it up: commit, then hand it over
    await session.commit()
    if job.status in ("queued", "running"):
        dispatcher = getattr(request.app.state, "import_dispatcher", None)
        if dispatcher is not None:
            dispatcher(job.id)
        else:
            tasks.dispatch(platform_settings(request), job.id)
    counts = await repository.count_rows(session, job.id)
    return ImportPublic.of(job, counts, [], None)


@router.get("/v1/invoice-imports/{import_id}", response_model=ImportPublic)
async def get_import(
    import_id: str,
    principal: Supplier,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=1000, description="rows per page")] = 100,
    cursor: Cursor = None,
) -> ImportPublic:
    """The job: status, ``done``/``total``, counts, and per-row outcomes (paged by row)."""
    job = await repository.get_import(session, import_id)
    if job is None or job.organization_id != principal.organization_id:
        raise NotFound(f"there is no import {import_id}")
    after = 0
    if cursor is not None:
        try:
            after = int(decode_cursor(cursor))
        except ValueError:
            raise InvalidInput("cursor is not one this API returned") from None
    size = limit
    rows = await repository.rows_page(session, job.id, after, size + 1)
    next_cursor = encode_cursor(str(rows[size - 1].row)) if len(rows) > size else None
    counts = await repository.count_rows(session, job.id)
    return ImportPublic.of(job, counts, rows[:size], next_cursor)


@router.put("/v1/core-firms/{organization_id}/payment-terms", response_model=PaymentTerms)
async def set_payment_terms(
    organization_id: str, body: PaymentTerms, principal: CurrentPrincipal, session: Session
) -> PaymentTerms:
    """A core firm's payment terms, used for invoices without a due date (the operator, or the
    core firm itself)."""
    if principal.role == Role.core_firm:
        if principal.organization_id != organization_id:
            raise NotFound(f"there is no core firm {organization_id}")
    elif principal.role != Role.operator:
        raise Forbidden("only the operator or the core firm itself sets payment terms")
    org = await session.get(Organization, organization_id)
    if org is None or org.role != Role.core_firm:
        raise NotFound(f"there is no core firm {organization_id}")
    await repository.set_payment_terms(session, organization_id, body.payment_terms_days)
    await audit.append(
        session,
        principal,
        "core_firm.payment_terms",
        object_type="organization",
        object_id=organization_id,
        details={"payment_terms_days": body.payment_terms_days},
    )
    return body
