"""Business rules of invoice intake, on top of the parser (``parsing/``).

:func:`assess` applies the rules of an upload and returns every finding; :func:`intake` refuses the
first finding (422 with its ``reason``), stores the original in the blob store, inserts the invoice
under the fingerprint's UNIQUE constraint (a duplicate is 409) and creates the receivable (an
invoice) or dilutes the credited one (a credit note), each with its event, in the caller's
transaction. ``POST /v1/invoices/parse`` shows the same findings as warnings and stores nothing.

The rules, in order (docs/invoices.md):

1. the amount is exact in a currency the platform books;
2. seller and buyer carry a tax id (or, failing it, a legal registration id);
3. the uploader is the seller (its tax id is one of the seller's ids) or the named payee (the
   payee name equals the uploader's registered name, compared case- and space-insensitively);
4. the buyer is a registered core firm, matched by tax id;
5. an invoice's amount due is positive; a credit note references an invoice of the same seller
   and buyer whose receivable the uploader holds, and reduces it (dilution) — otherwise refused;
6. the due date is the invoice's, else issue date + the core firm's payment terms, else refused;
   it is not before the issue date, and at most ``max_term_days`` (default 180) after it.

Tax-id checksum failures stay warnings (the parser's ``tax_id_checksum``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import ids
from qilian.kit.errors import Conflict, InvalidInput
from qilian.kit.money import Money, MoneyError
from services.api.audit import service as audit
from services.api.audit.service import Actor
from services.api.auth.models import Principal
from services.api.invoices import repository
from services.api.invoices.blobs import BlobStore, sha256_hex
from services.api.invoices.models import Invoice
from services.api.invoices.parsing import DocumentKind, ParsedInvoice, Party, parse
from services.api.invoices.settings import IntakeSettings
from services.api.organizations.models import Organization, Role
from services.api.receivables import service as receivables
from services.api.receivables.models import DueDateSource, Receivable, ReceivableEvent

FINGERPRINT_VERSION: Final = "qilian-invoice-fingerprint/1"
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")
_SPACE = re.compile(r"\s+")


# normalisation and the fingerprint --------------------------------------------------------------


def normalise_tax_id(value: str | None) -> str:
    """NFKC, upper case, letters and digits only: ``"FR 05 987 654 321"`` → ``"FR05987654321"``."""
    if not value:
        return ""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", value).upper())


def normalise_number(value: str) -> str:
    """NFKC, upper case, white space removed (punctuation is kept: ``2018-112`` ≠ ``2018112``)."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", value).upper())


def normalise_name(value: str | None) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", value or "").casefold()).strip()


def party_key(party: Party) -> str:
    """The party's identity in the fingerprint: its tax id, else its legal registration id."""
    return normalise_tax_id(party.tax_id) or normalise_tax_id(party.legal_id)


def party_ids(party: Party) -> list[str]:
    """Every id of a party that may match a registered organisation's tax id."""
    values = [party.tax_id, party.legal_id, *(party.tax_registration_id or "").split("|")]
    keys = [normalise_tax_id(v) for v in values]
    return list(dict.fromkeys(k for k in keys if k))


def fingerprint(
    *,
    kind: DocumentKind,
    seller: str,
    buyer: str,
    number: str,
    issue_date: date,
    amount: Money,
) -> str:
    """sha256 of the normalised identity of an invoice (docs/invoices.md, "Duplicates")."""
    parts = [
        FINGERPRINT_VERSION,
        kind.value,
        seller,
        buyer,
        normalise_number(number),
        issue_date.isoformat(),
        amount.currency,
        str(abs(amount.minor)),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# findings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A business rule the upload does not meet (a refusal; a warning in a dry run)."""

    code: str
    message: str
    field: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


class InvoiceRefused(InvalidInput):
    slug, title = "invoice-refused", "Invoice refused"


class DuplicateInvoice(Conflict):
    slug, title = "duplicate-invoice", "Duplicate invoice"


@dataclass(frozen=True)
class Uploader:
    """Who uploads: the organisation, the event's actor and the audit actor."""

    organization: Organization
    audit_actor: Actor
    cache: dict[tuple[str, ...], list[Organization]] | None = None  # per import: buyers by ids

    @property
    def id(self) -> str:
        return self.organization.id


async def uploader_of(session: AsyncSession, principal: Principal) -> Uploader:
    org = await session.get(Organization, principal.organization_id)
    if org is None:  # a token of a deleted organisation
        raise InvoiceRefused("the caller's organisation is not registered")
    return Uploader(org, Actor.of(principal))


@dataclass
class Assessment:
    invoice: ParsedInvoice
    findings: list[Finding] = field(default_factory=list)
    amount: Money | None = None
    seller_key: str = ""
    buyer_key: str = ""
    debtor: Organization | None = None
    due_date: date | None = None
    due_date_source: DueDateSource | None = None
    credited: Invoice | None = None
    fingerprint: str | None = None

    def refuse(self, code: str, message: str, field: str | None = None) -> None:
        self.findings.append(Finding(code, message, field))


async def assess(
    session: AsyncSession, uploader: Uploader, invoice: ParsedInvoice, config: IntakeSettings
) -> Assessment:
    """Apply every rule; the result's ``findings`` lists those not met (empty: acceptable)."""
    out = Assessment(invoice)
    try:
        out.amount = invoice.money(abs(invoice.payable_amount))
    except MoneyError as exc:
        out.refuse("amount_not_bookable", str(exc), "payable_amount")

    out.seller_key, out.buyer_key = party_key(invoice.seller), party_key(invoice.buyer)
    if not out.seller_key:
        out.refuse("seller_tax_id_missing", "the seller has no tax id", "seller.tax_id")
    if not out.buyer_key:
        out.refuse("buyer_tax_id_missing", "the buyer has no tax id", "buyer.tax_id")

    own = normalise_tax_id(uploader.organization.tax_id)
    is_seller = bool(own) and own in party_ids(invoice.seller)
    is_payee = bool(invoice.payee) and normalise_name(invoice.payee) == normalise_name(
        uploader.organization.name
    )
    if not (is_seller or is_payee):
        out.refuse(
            "uploader_not_seller",
            "the uploading organisation is neither the invoice's seller (by tax id) nor its "
            "named payee",
            "seller.tax_id",
        )

    buyer_ids = tuple(party_ids(invoice.buyer))
    cached = uploader.cache.get(buyer_ids) if uploader.cache is not None else None
    buyers = (
        cached
        if cached is not None
        else await repository.organizations_by_tax_ids(session, buyer_ids)
    )
    if uploader.cache is not None:
        uploader.cache[buyer_ids] = buyers
    cores = [org for org in buyers if org.role == Role.core_firm]
    if cores:
        out.debtor = cores[0]
    elif buyers:
        out.refuse(
            "buyer_not_core_firm", "the buyer is registered, but not as a core firm", "buyer"
        )
    else:
        out.refuse(
            "buyer_not_registered", "the buyer is not a registered core firm (by tax id)", "buyer"
        )

    if invoice.kind is DocumentKind.INVOICE:
        if invoice.payable_amount <= 0:
            out.refuse("amount_not_positive", "the amount due must be positive", "payable_amount")
        await _due_date(session, out, config)
    else:
        await _credited_invoice(session, uploader, out)

    if out.amount is not None and out.seller_key and out.buyer_key:
        out.fingerprint = fingerprint(
            kind=invoice.kind,
            seller=out.seller_key,
            buyer=out.buyer_key,
            number=invoice.invoice_number,
            issue_date=invoice.issue_date,
            amount=out.amount,
        )
    return out


async def _due_date(session: AsyncSession, out: Assessment, config: IntakeSettings) -> None:
    invoice = out.invoice
    if invoice.due_date is not None:
        out.due_date, out.due_date_source = invoice.due_date, DueDateSource.invoice
    elif out.debtor is not None:
        days = await repository.payment_terms_days(session, out.debtor.id)
        if days is None:
            out.refuse(
                "due_date_missing",
                "the invoice has no due date and the core firm has no payment terms",
                "due_date",
            )
            return
        out.due_date = invoice.issue_date + timedelta(days=days)
        out.due_date_source = DueDateSource.payment_terms
    else:
        return
    if out.due_date < invoice.issue_date:
        out.refuse("due_before_issue", "the due date is before the issue date", "due_date")
    elif (out.due_date - invoice.issue_date).days > config.max_term_days:
        out.refuse(
            "term_too_long",
            f"the due date is more than {config.max_term_days} days after the issue date",
            "due_date",
        )


async def _credited_invoice(session: AsyncSession, uploader: Uploader, out: Assessment) -> None:
    invoice = out.invoice
    if not invoice.preceding_invoices:
        out.refuse(
            "credit_note_unreferenced",
            "a credit note must reference the invoice it credits (BT-25)",
            "preceding_invoice",
        )
        return
    if not (out.seller_key and out.buyer_key):
        return
    candidates = await repository.invoices_for_credit(
        session,
        seller_tax_id=out.seller_key,
        buyer_tax_id=out.buyer_key,
        number_keys=[normalise_number(n) for n in invoice.preceding_invoices],
    )
    for candidate in candidates:
        if candidate.receivable_id is None:
            continue
        receivable = await session.get(Receivable, candidate.receivable_id)
        if receivable is not None and uploader.id in (
            receivable.creditor_id,
            receivable.holder_id,
        ):
            out.credited = candidate
            return
    out.refuse(
        "credit_note_unmatched",
        "the invoice this credit note references has no receivable you hold",
        "preceding_invoice",
    )


# intake ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntakeResult:
    outcome: str  # created | diluted
    invoice: Invoice
    parsed: ParsedInvoice
    receivable: Receivable
    event: ReceivableEvent


def refusal_of(findings: list[Finding]) -> InvoiceRefused:
    first = findings[0]
    extra: dict[str, Any] = {"reason": first.code}
    if first.field:
        extra["field"] = first.field
    return InvoiceRefused(
        first.message,
        errors=[
            {"field": f.field or "invoice", "in": "body", "message": f.message, "code": f.code}
            for f in findings
        ],
        extra=extra,
    )


async def duplicate_of(session: AsyncSession, uploader: Uploader, fp: str) -> DuplicateInvoice:
    """The 409: naming the existing receivable only to a party of it (never leak another
    organisation's data)."""
    existing = await repository.by_fingerprint(session, fp)
    extra: dict[str, Any] = {"reason": "duplicate"}
    if existing is not None and existing.receivable_id is not None:
        receivable = await session.get(Receivable, existing.receivable_id)
        if receivable is not None and receivables.is_party(receivable, uploader.id):
            extra["receivable_id"] = receivable.id
            extra["invoice_id"] = existing.id
            return DuplicateInvoice(
                f"this invoice was registered already as receivable {receivable.id}",
                extra=extra,
            )
    return DuplicateInvoice("this invoice has been registered already", extra=extra)


@dataclass(frozen=True)
class Prepared:
    """An upload that meets every rule, its original stored, its invoice row built."""

    parsed: ParsedInvoice
    assessment: Assessment
    row: Invoice
    origin: dict[str, Any]  # where the original is: {"sha256"} (+ import id and row)

    def new_receivable(
        self, uploader: Uploader
    ) -> tuple[receivables.NewReceivable, str, dict[str, Any]]:
        a = self.assessment
        assert a.debtor is not None
        assert a.due_date is not None
        assert a.due_date_source is not None
        assert a.amount is not None
        assert self.row.receivable_id is not None
        new = receivables.NewReceivable(
            id=self.row.receivable_id,
            invoice_id=self.row.id,
            creditor_id=uploader.id,
            debtor_id=a.debtor.id,
            amount=a.amount,
            issue_date=self.parsed.issue_date,
            due_date=a.due_date,
            due_date_source=a.due_date_source,
        )
        data = {**self.origin, "format": self.parsed.format.value, "fingerprint": a.fingerprint}
        return new, uploader.id, data


async def prepare(
    session: AsyncSession,
    uploader: Uploader,
    data: bytes,
    *,
    store: BlobStore,
    config: IntakeSettings,
    content_type: str | None = None,
    parsed: ParsedInvoice | None = None,
    source: dict[str, Any] | None = None,
) -> Prepared:
    """Parse (unless ``parsed``), apply the rules (refusing the first finding), store the
    original (unless ``source`` names where it is: a row of an import file) and build the row."""
    invoice = parsed if parsed is not None else parse(data, content_type=content_type)
    assessment = await assess(session, uploader, invoice, config)
    if assessment.findings:
        raise refusal_of(assessment.findings)
    assert assessment.amount is not None
    assert assessment.fingerprint is not None
    if source is None:
        origin: dict[str, Any] = {"sha256": await store.put(data)}
    else:
        origin = dict(source)
    receivable_id = (
        ids.new_id("rcv") if assessment.credited is None else str(assessment.credited.receivable_id)
    )
    row = Invoice(
        id=ids.new_id("inv"),
        organization_id=uploader.id,
        fingerprint=assessment.fingerprint,
        kind=invoice.kind.value,
        format=invoice.format.value,
        invoice_number=invoice.invoice_number,
        number_key=normalise_number(invoice.invoice_number),
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=assessment.amount.currency,
        amount_minor=assessment.amount.minor,
        seller_tax_id=assessment.seller_key,
        buyer_tax_id=assessment.buyer_key,
        sha256=str(origin["sha256"]),
        receivable_id=receivable_id,
        parsed=invoice.to_json(),
    )
    return Prepared(invoice, assessment, row, origin)


async def intake(
    session: AsyncSession,
    uploader: Uploader,
    data: bytes,
    *,
    store: BlobStore,
    config: IntakeSettings,
    content_type: str | None = None,
    parsed: ParsedInvoice | None = None,
    source: dict[str, Any] | None = None,
    audit_each: bool = True,
) -> IntakeResult:
    """Accept one invoice file, or one already parsed row of a CSV/NDJSON import (``parsed``,
    with ``source``: the import file's ``sha256`` and the ``row``; the file itself is stored)."""
    ready = await prepare(
        session,
        uploader,
        data,
        store=store,
        config=config,
        content_type=content_type,
        parsed=parsed,
        source=source,
    )
    row, assessment, invoice = ready.row, ready.assessment, ready.parsed
    assert assessment.fingerprint is not None
    assert assessment.amount is not None
    if not await repository.insert_invoice(session, row):
        raise await duplicate_of(session, uploader, assessment.fingerprint)
    if invoice.kind is DocumentKind.INVOICE:
        receivable, event = await receivables.create(session, *ready.new_receivable(uploader))
        outcome = "created"
    else:
        assert assessment.credited is not None
        assert assessment.credited.receivable_id is not None
        document = {"invoice_id": row.id, **ready.origin, "format": invoice.format.value}
        receivable, event = await receivables.dilute(
            session,
            assessment.credited.receivable_id,
            assessment.amount,
            actor=uploader.id,
            data={"credit_note": document, "credited_invoice_id": assessment.credited.id},
        )
        outcome = "diluted"
    if audit_each:
        await audit.append(
            session,
            uploader.audit_actor,
            f"invoice.{outcome}",
            object_type="receivable",
            object_id=receivable.id,
            details={"invoice_id": row.id, "sha256": row.sha256, "event_id": event.event_id},
        )
    return IntakeResult(outcome, row, invoice, receivable, event)


async def dry_run(
    session: AsyncSession,
    uploader: Uploader,
    data: bytes,
    *,
    config: IntakeSettings,
    content_type: str | None = None,
) -> dict[str, Any]:
    """The parsed invoice, with the parser's warnings and every business finding as warnings."""
    invoice = parse(data, content_type=content_type)
    assessment = await assess(session, uploader, invoice, config)
    warnings = [w.to_json() for w in invoice.warnings]
    warnings += [f.to_json() for f in assessment.findings]
    if assessment.fingerprint and await repository.by_fingerprint(session, assessment.fingerprint):
        warnings.append(
            {"code": "duplicate", "message": "this invoice has been registered already"}
        )
    body = invoice.to_json()
    body["warnings"] = warnings
    body["fingerprint"] = assessment.fingerprint
    body["due_date_source"] = (
        assessment.due_date_source.value if assessment.due_date_source else None
    )
    body["effective_due_date"] = assessment.due_date.isoformat() if assessment.due_date else None
    body["sha256"] = sha256_hex(data)
    return body
