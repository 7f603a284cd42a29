"""Bulk invoice imports: a ZIP of invoice files, a CSV or an NDJSON file, up to 100 000 invoices.

``POST /v1/invoice-imports`` stores the upload in the blob store, counts its rows and records the
job — unique per (organisation, sha256 of the upload), so submitting the same import again returns
the same job and imports nothing twice — then hands the job's id to a worker
(``invoices.process_import``). The worker reads the upload back and processes it in chunks of
``QILIAN_INTAKE_IMPORT_CHUNK_SIZE`` rows, one transaction per chunk: each row goes through exactly
the rules of a single upload inside a savepoint, so a refused or duplicate row is recorded with
its reason and never blocks the others; the chunk's outcomes and the job's ``done`` counter commit
together. A task run twice, or resumed after a crash, skips the rows already recorded.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import db, ids
from qilian.kit.errors import InvalidInput, PayloadTooLarge, QilianError
from qilian.kit.settings import Settings
from services.api.audit import service as audit
from services.api.audit.service import Actor
from services.api.invoices import repository, service
from services.api.invoices.blobs import BlobStore, blob_store
from services.api.invoices.models import (
    ImportStatus,
    InvoiceImport,
    InvoiceImportRow,
    RowOutcome,
)
from services.api.invoices.parsing import (
    DEFAULT_LIMITS,
    DocumentKind,
    InvoiceParseError,
    ParsedInvoice,
    iter_csv,
    iter_ndjson,
    parse,
)
from services.api.invoices.parsing.errors import refusal
from services.api.invoices.settings import IntakeSettings
from services.api.organizations.models import Organization
from services.api.receivables import service as receivables

log = structlog.get_logger(__name__)

KINDS: Final = ("zip", "csv", "ndjson")


def kind_of(data: bytes) -> str:
    """From the content: a ZIP's magic, a JSON object per line, else CSV."""
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "ndjson" if head == b"{" else "csv"


def _zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [info for info in archive.infolist() if not info.is_dir()]


def count_rows(data: bytes, kind: str) -> int:
    """How many rows the import holds (0 when it cannot be read; the worker then says why)."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return len(_zip_members(archive))
        text = data.decode("utf-8-sig")
    except (zipfile.BadZipFile, UnicodeDecodeError, ValueError):
        return 0
    if kind == "ndjson":
        return sum(1 for line in text.splitlines() if line.strip())
    try:
        rows = sum(1 for cells in csv.reader(io.StringIO(text, newline="")) if any(cells))
    except csv.Error:
        return 0
    return max(rows - 1, 0)


async def submit(
    session: AsyncSession,
    organization_id: str,
    actor: Actor,
    data: bytes,
    *,
    store: BlobStore,
    config: IntakeSettings,
) -> tuple[InvoiceImport, bool]:
    """Record the job (or find the same import submitted before); True when it is new."""
    if len(data) > config.max_import_bytes:
        raise PayloadTooLarge(f"an import is limited to {config.max_import_bytes} bytes")
    if not data.strip():
        raise InvalidInput("the import is empty")
    kind = kind_of(data)
    total = count_rows(data, kind)
    if total > config.max_import_rows:
        raise PayloadTooLarge(f"an import holds at most {config.max_import_rows} invoices")
    sha256 = await store.put(data)
    job = InvoiceImport(
        id=ids.new_id("imp"),
        organization_id=organization_id,
        actor=f"{actor.type}:{actor.id}",
        sha256=sha256,
        kind=kind,
        status=ImportStatus.queued.value,
        total=total,
        done=0,
    )
    stored = await repository.insert_import(session, job)
    created = stored.id == job.id
    if created:
        await audit.append(
            session,
            actor,
            "invoice_import.submit",
            object_type="invoice_import",
            object_id=stored.id,
            details={"sha256": sha256, "kind": kind, "total": total},
        )
    return stored, created


# processing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One row of an import: a file's bytes (ZIP member) or a parsed CSV/NDJSON row."""

    row: int
    name: str
    data: bytes = b""
    parsed: ParsedInvoice | None = None
    refusal: QilianError | None = None


def items(data: bytes, kind: str) -> Iterator[Item]:
    """The rows in order, numbered from 1; a malformed file as a whole raises."""
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for n, info in enumerate(_zip_members(archive), start=1):
                name = info.filename[:300]
                if info.file_size > DEFAULT_LIMITS.max_upload_bytes:
                    yield Item(n, name, refusal=_too_large())
                    continue
                if (
                    info.file_size > 1024 * 1024
                    and info.file_size > DEFAULT_LIMITS.max_zip_ratio * max(info.compress_size, 1)
                ):
                    yield Item(n, name, refusal=_bomb())
                    continue
                try:
                    with archive.open(info) as member:
                        content = member.read(DEFAULT_LIMITS.max_upload_bytes + 1)
                except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
                    yield Item(n, name, refusal=InvalidInput(f"unreadable member: {exc}"[:200]))
                    continue
                if len(content) > DEFAULT_LIMITS.max_upload_bytes:
                    yield Item(n, name, refusal=_too_large())
                    continue
                yield Item(n, name, data=content)
        return
    rows = iter_csv(data) if kind == "csv" else iter_ndjson(data)
    label = "row" if kind == "csv" else "line"
    for n, result in enumerate(rows, start=1):
        if isinstance(result, InvoiceParseError):
            yield Item(n, f"{label} {n}", refusal=result)
        else:
            yield Item(n, f"{label} {n}", parsed=result)


def _bomb() -> QilianError:
    return refusal(
        "zip_compression_ratio",
        f"a member over 1 MiB compressed more than {DEFAULT_LIMITS.max_zip_ratio}:1 is refused",
    )


def _too_large() -> QilianError:
    return PayloadTooLarge(f"a file is limited to {DEFAULT_LIMITS.max_upload_bytes} bytes")


def _outcome_of(exc: QilianError) -> tuple[str, str, str]:
    reason = str(exc.extra.get("reason") or exc.slug)
    outcome = RowOutcome.duplicate if reason == "duplicate" else RowOutcome.refused
    return outcome.value, reason[:64], exc.detail[:1000]


async def _one(
    session: AsyncSession,
    uploader: service.Uploader,
    job: InvoiceImport,
    item: Item,
    store: BlobStore,
    config: IntakeSettings,
) -> InvoiceImportRow:
    row = InvoiceImportRow(import_id=job.id, row=item.row, name=item.name, outcome="")
    try:
        if item.refusal is not None:
            raise item.refusal
        async with session.begin_nested():
            result = await service.intake(
                session,
                uploader,
                item.data,
                store=store,
                config=config,
                parsed=item.parsed,
                source=None
                if item.parsed is None
                else {"sha256": job.sha256, "import_id": job.id, "row": item.row},
                audit_each=False,
            )
        row.outcome = result.outcome
        row.invoice_id, row.receivable_id = result.invoice.id, result.receivable.id
    except QilianError as exc:
        row.outcome, row.reason, row.detail = _outcome_of(exc)
        if row.outcome == RowOutcome.duplicate:
            row.receivable_id = exc.extra.get("receivable_id")
    return row


async def process(
    import_id: str,
    settings: Settings,
    config: IntakeSettings,
    *,
    store: BlobStore | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> str:
    """Process an import to the end; returns its final status. Safe to run twice."""
    store = store or blob_store(settings, config)
    async with db.transaction() as session:
        job = await repository.get_import(session, import_id, lock=True)
        if job is None or job.status in (ImportStatus.done, ImportStatus.failed):
            return job.status if job is not None else "missing"
        job.status = ImportStatus.running.value
        organization = await session.get(Organization, job.organization_id)
        assert organization is not None
        done_before = job.done
    actor_type, _, actor_id = job.actor.partition(":")
    uploader = service.Uploader(
        organization, Actor(actor_type, actor_id, organization.id), cache={}
    )
    data = await store.get(job.sha256)
    chunk: list[Item] = []
    seen = 0
    try:
        for item in items(data, job.kind):
            seen = item.row
            if item.row <= done_before:
                continue  # recorded by an earlier run (rows commit in order, chunk by chunk)
            chunk.append(item)
            if len(chunk) >= config.import_chunk_size:
                await _chunk(job, uploader, chunk, store, config)
                if on_chunk:
                    on_chunk(chunk[-1].row, job.total)
                chunk = []
        if chunk:
            await _chunk(job, uploader, chunk, store, config)
    except InvoiceParseError as exc:  # the file as a whole (e.g. a CSV without a header)
        return await _finish(import_id, ImportStatus.failed, seen, f"{exc.reason}: {exc.detail}")
    except zipfile.BadZipFile as exc:
        return await _finish(import_id, ImportStatus.failed, seen, f"zip_invalid: {exc}")
    return await _finish(import_id, ImportStatus.done, seen, None)


async def _batch(
    session: AsyncSession,
    uploader: service.Uploader,
    job: InvoiceImport,
    items_: list[Item],
    store: BlobStore,
    config: IntakeSettings,
) -> tuple[list[InvoiceImportRow], list[Item]]:
    """Invoices of a chunk in multi-row INSERTs: each row is prepared (parsed, rules applied,
    original stored) on its own, then the invoices go in one ``INSERT … ON CONFLICT DO NOTHING``
    (the fingerprint's constraint decides duplicates, as for single uploads) and the new
    receivables, their events and outbox rows in three more. Credit notes are returned to be
    taken one by one afterwards (they may credit an invoice of this very chunk)."""
    rows: list[InvoiceImportRow] = []
    later: list[Item] = []
    ready: list[tuple[Item, service.Prepared]] = []
    first_of: dict[str, service.Prepared] = {}
    for item in items_:
        row = InvoiceImportRow(import_id=job.id, row=item.row, name=item.name, outcome="")
        try:
            if item.refusal is not None:
                raise item.refusal
            parsed = item.parsed if item.parsed is not None else parse(item.data)
            if parsed.kind is DocumentKind.CREDIT_NOTE:
                later.append(item)
                continue
            prepared = await service.prepare(
                session,
                uploader,
                item.data,
                store=store,
                config=config,
                parsed=parsed,
                source=None
                if item.parsed is None
                else {"sha256": job.sha256, "import_id": job.id, "row": item.row},
            )
        except QilianError as exc:
            row.outcome, row.reason, row.detail = _outcome_of(exc)
            rows.append(row)
            continue
        fingerprint = str(prepared.row.fingerprint)
        if fingerprint in first_of:  # the same invoice twice in one chunk
            row.outcome, row.reason = RowOutcome.duplicate.value, "duplicate"
            row.detail = "this invoice has been registered already"
            row.receivable_id = first_of[fingerprint].row.receivable_id
            rows.append(row)
            continue
        first_of[fingerprint] = prepared
        ready.append((item, prepared))
    inserted = await repository.insert_invoices(session, [p.row for _, p in ready])
    fresh = [(item, p) for item, p in ready if p.row.id in inserted]
    await receivables.create_many(session, [p.new_receivable(uploader) for _, p in fresh])
    for item, p in ready:
        row = InvoiceImportRow(import_id=job.id, row=item.row, name=item.name, outcome="")
        if p.row.id in inserted:
            row.outcome = RowOutcome.created.value
            row.invoice_id, row.receivable_id = p.row.id, p.row.receivable_id
        else:
            duplicate = await service.duplicate_of(session, uploader, str(p.row.fingerprint))
            row.outcome, row.reason, row.detail = _outcome_of(duplicate)
            row.receivable_id = duplicate.extra.get("receivable_id")
        rows.append(row)
    return rows, later


async def _chunk(
    job: InvoiceImport,
    uploader: service.Uploader,
    chunk: list[Item],
    store: BlobStore,
    config: IntakeSettings,
) -> None:
    async with db.transaction() as session:
        locked = await repository.get_import(session, job.id, lock=True)
        assert locked is not None
        recorded = await repository.done_rows(session, job.id, chunk[0].row, chunk[-1].row + 1)
        todo = [item for item in chunk if item.row not in recorded]
        try:
            async with session.begin_nested():
                rows, later = await _batch(session, uploader, job, todo, store, config)
        except SQLAlchemyError:
            # a database refusal of the batch (should not happen: the rules ran first) must not
            # block the import: take the chunk row by row, each in its own savepoint
            log.exception("invoice_import_batch_failed", import_id=job.id)
            rows, later = [], todo
        rows += [await _one(session, uploader, job, item, store, config) for item in later]
        rows.sort(key=lambda r: r.row)
        await repository.add_rows(session, rows)
        locked.done = max(locked.done, chunk[-1].row)
        locked.total = max(locked.total, locked.done)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
        await audit.append(
            session,
            uploader.audit_actor,
            "invoice_import.chunk",
            object_type="invoice_import",
            object_id=job.id,
            details={"rows": [chunk[0].row, chunk[-1].row], "outcomes": counts},
        )


async def _finish(import_id: str, status: ImportStatus, seen: int, error: str | None) -> str:
    async with db.transaction() as session:
        job = await repository.get_import(session, import_id, lock=True)
        assert job is not None
        job.status = status.value
        job.total = max(seen, job.done) if status == ImportStatus.done else job.total
        job.done = job.total if status == ImportStatus.done else job.done
        job.error = error[:1000] if error else None
        job.finished_at = datetime.now(UTC)
    log.info("invoice_import_finished", import_id=import_id, status=status.value)
    return status.value
