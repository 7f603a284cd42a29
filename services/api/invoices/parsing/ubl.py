"""OASIS UBL 2.1 ``Invoice`` and ``CreditNote`` (EN 16931, Peppol BIS Billing 3, XRechnung-UBL).

A ``CreditNote`` root is a credit note whatever its amounts say (they are positive by convention);
an ``Invoice`` with a credit type code (381 …) or a negative amount due is read as one too.
The mapping is the table in docs/invoices.md.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from .errors import refuse
from .fields import Paths, Reader
from .model import DocumentKind, InvoiceFormat, Party
from .values import Draft, parse_amount, parse_iso_date
from .xml import text_of

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

_PATHS = Paths({"cac": CAC, "cbc": CBC})
_TAX_AMOUNT_TAGS = frozenset({f"{{{CBC}}}TaxAmount"})

_VAT = "cac:PartyTaxScheme[normalize-space(cac:TaxScheme/cbc:ID)='VAT']/cbc:CompanyID"
_OTHER_TAX = "cac:PartyTaxScheme[not(normalize-space(cac:TaxScheme/cbc:ID)='VAT')]/cbc:CompanyID"
_SELLER = "cac:AccountingSupplierParty/cac:Party"
_BUYER = "cac:AccountingCustomerParty/cac:Party"
_TOTALS = "cac:LegalMonetaryTotal"


def _party(reader: Reader, path: str) -> Party:
    node = reader.element(path)
    if node is None:
        return Party()
    name = reader.one("cac:PartyLegalEntity/cbc:RegistrationName", node, path) or reader.one(
        "cac:PartyName/cbc:Name", node, path
    )
    return Party(
        name=name,
        tax_id=reader.one(_VAT, node, path),
        tax_registration_id="|".join(reader.many(_OTHER_TAX, node)) or None,
        legal_id=reader.one("cac:PartyLegalEntity/cbc:CompanyID", node, path),
    )


def parse_ubl(root: etree._Element, *, fmt: InvoiceFormat | None = None) -> Draft:
    """Read a UBL Invoice or CreditNote root (already dispatched on its exact qualified name)."""
    credit = etree.QName(root).namespace == CREDIT_NOTE_NS
    local = "CreditNote" if credit else "Invoice"
    reader = Reader(root, _PATHS, f"/{local}")
    type_path = "cbc:CreditNoteTypeCode" if credit else "cbc:InvoiceTypeCode"
    due_path = "cac:PaymentMeans/cbc:PaymentDueDate" if credit else "cbc:DueDate"
    where = {
        "invoice_number": reader.where("cbc:ID"),
        "type_code": reader.where(type_path),
        "issue_date": reader.where("cbc:IssueDate"),
        "due_date": reader.where(due_path),
        "currency": reader.where("cbc:DocumentCurrencyCode"),
        "tax_currency": reader.where("cbc:TaxCurrencyCode"),
        "payable_amount": reader.where(f"{_TOTALS}/cbc:PayableAmount"),
        "seller.name": reader.where(f"{_SELLER}/cac:PartyLegalEntity/cbc:RegistrationName"),
        "seller.tax_id": reader.where(f"{_SELLER}/{_VAT}"),
        "buyer.name": reader.where(f"{_BUYER}/cac:PartyLegalEntity/cbc:RegistrationName"),
        "buyer.tax_id": reader.where(f"{_BUYER}/{_VAT}"),
        "payee": reader.where("cac:PayeeParty/cac:PartyName/cbc:Name"),
        "payment_accounts": reader.where("cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID"),
    }
    draft = Draft(
        format=fmt or (InvoiceFormat.UBL_CREDIT_NOTE if credit else InvoiceFormat.UBL_INVOICE),
        syntax="ubl-2.1-creditnote" if credit else "ubl-2.1-invoice",
        where=where,
    )
    draft.kind = DocumentKind.CREDIT_NOTE if credit else None
    draft.profile = reader.one("cbc:CustomizationID")
    draft.invoice_number = reader.one("cbc:ID")
    draft.type_code = reader.one(type_path)
    issue = reader.one("cbc:IssueDate")
    draft.issue_date = parse_iso_date(issue, field=where["issue_date"]) if issue else None
    due = reader.distinct(due_path) if credit else reader.one(due_path)
    if due is None and not credit:
        due = reader.distinct("cac:PaymentMeans/cbc:PaymentDueDate")
    draft.due_date = parse_iso_date(due, field=where["due_date"]) if due else None
    draft.currency = reader.one("cbc:DocumentCurrencyCode")
    draft.tax_currency = reader.one("cbc:TaxCurrencyCode")
    if draft.currency is not None:
        reader.check_currencies(draft.currency, draft.tax_currency, _TAX_AMOUNT_TAGS)
    draft.seller = _party(reader, _SELLER)
    draft.buyer = _party(reader, _BUYER)
    draft.payee = reader.one("cac:PayeeParty/cac:PartyName/cbc:Name")
    draft.payment_accounts = reader.many("cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID")
    draft.preceding_invoices = reader.many(
        "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"
    )
    totals = reader.element(_TOTALS)
    if totals is not None:
        draft.payable_amount = reader.amount("cbc:PayableAmount", totals, _TOTALS)
        draft.total_amount = reader.amount("cbc:TaxInclusiveAmount", totals, _TOTALS)
        draft.prepaid_amount = reader.amount("cbc:PrepaidAmount", totals, _TOTALS)
        draft.tax_exclusive_amount = reader.amount("cbc:TaxExclusiveAmount", totals, _TOTALS)
        draft.rounding_amount = reader.amount("cbc:PayableRoundingAmount", totals, _TOTALS)
    draft.tax_amount = _tax_total(reader, draft.currency)
    return draft


def _tax_total(reader: Reader, currency: str | None) -> Decimal | None:
    """BT-110: the ``cac:TaxTotal/cbc:TaxAmount`` in the document currency (BT-111, in the tax
    currency, may sit beside it)."""
    path = "cac:TaxTotal/cbc:TaxAmount"
    found = [n for n in reader.nodes(path) if (n.get("currencyID") or "").strip() == currency]
    if len(found) > 1:
        where = reader.where(path)
        refuse("duplicate_element", f"{where} occurs {len(found)} times in {currency}", field=where)
    return parse_amount(text_of(found[0]), field=reader.where(path)) if found else None
