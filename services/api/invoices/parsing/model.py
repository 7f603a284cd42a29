"""The one normalised invoice every parser returns, in EN 16931 terms.

Amounts are exact ``Decimal`` values read from the document as written (a UBL ``CreditNote`` keeps
its positive amounts; the sign of the document is ``kind``). The currency is the document currency
(BT-5); :meth:`ParsedInvoice.money` turns an amount into the kit's ``Money`` for the currencies the
platform books. Nothing here knows about receivables: business rules read this and decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from qilian.kit.money import Money


class DocumentKind(StrEnum):
    """Whether the document claims money (invoice) or gives it back (credit note)."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceFormat(StrEnum):
    """The format detected from the content (never from a file name)."""

    UBL_INVOICE = "ubl_invoice"  # OASIS UBL 2.1 Invoice (EN 16931, Peppol BIS, XRechnung-UBL)
    UBL_CREDIT_NOTE = "ubl_credit_note"  # OASIS UBL 2.1 CreditNote
    CII = "cii"  # UN/CEFACT CII D16B (Factur-X/ZUGFeRD 2.x, XRechnung-CII)
    ZUGFERD_1 = "zugferd_1"  # ZUGFeRD 1.0 CrossIndustryDocument
    FACTURX_PDF = "facturx_pdf"  # PDF with an embedded CII/ZUGFeRD/UBL XML
    SHUDIAN_XML = "shudian_xml"  # 数电票 EInvoice XML
    OFD_XML = "ofd_xml"  # legacy VAT e-invoice original_invoice.xml (fp: namespace)
    OFD_ZIP = "ofd_zip"  # OFD package holding one of the two above
    CSV = "csv"  # the platform's CSV schema (docs/invoices.md)
    JSON = "json"  # the platform's JSON schema (docs/invoices.md)


@dataclass(frozen=True, slots=True)
class Party:
    """Seller (BG-4) or buyer (BG-7)."""

    name: str | None = None  # BT-27 / BT-44
    tax_id: str | None = None  # BT-31 / BT-48: VAT id; for China the USCC (纳税人识别号)
    tax_registration_id: str | None = None  # BT-32: other tax registration(s), "|"-joined
    legal_id: str | None = None  # BT-30 / BT-47: legal registration id


@dataclass(frozen=True, slots=True)
class ParseWarning:
    """A finding that does not stop the parse (e.g. a tax id failing its checksum)."""

    code: str
    message: str
    field: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class ParsedInvoice:
    """A parsed invoice or credit note, whatever format it came in."""

    format: InvoiceFormat
    invoice_number: str  # BT-1 (legacy China: InvoiceCode-InvoiceNo)
    kind: DocumentKind
    type_code: str | None  # BT-3 as written (380, 381 …; 数电票 label; legacy TypeCode)
    issue_date: date  # BT-2
    due_date: date | None  # BT-9; never present in Chinese formats
    currency: str  # BT-5
    seller: Party
    buyer: Party
    payable_amount: Decimal  # BT-115: the amount due
    total_amount: Decimal | None = None  # BT-112: total incl. VAT (价税合计)
    prepaid_amount: Decimal | None = None  # BT-113
    tax_exclusive_amount: Decimal | None = None  # BT-109
    tax_amount: Decimal | None = None  # BT-110, in the document currency
    rounding_amount: Decimal | None = None  # BT-114
    tax_currency: str | None = None  # BT-6, when VAT is also accounted in another currency
    payee: str | None = None  # BT-59: payee name when not the seller (e.g. a factor)
    payment_accounts: tuple[str, ...] = ()  # BT-84, in document order
    payment_bank: str | None = None  # bank name where the format gives one (China)
    preceding_invoices: tuple[str, ...] = ()  # BT-25 (a credit note's invoice; 红冲 original)
    profile: str | None = None  # BT-24 customization / guideline id, 数电票 tag and version
    syntax: str = ""  # e.g. "cii-d16b" inside a Factur-X PDF
    warnings: tuple[ParseWarning, ...] = field(default=())

    @property
    def payment_account(self) -> str | None:
        """The first pay-to account (BT-84), if any."""
        return self.payment_accounts[0] if self.payment_accounts else None

    @property
    def preceding_invoice(self) -> str | None:
        """The first preceding invoice reference (BT-25), if any."""
        return self.preceding_invoices[0] if self.preceding_invoices else None

    def money(self, amount: Decimal) -> Money:
        """``amount`` as exact ``Money`` in the document currency (raises ``MoneyError``
        for a currency the platform does not book or more decimals than it allows)."""
        return Money.of(amount, self.currency)

    def to_json(self) -> dict[str, Any]:
        """The fields of ``POST /v1/invoices/parse`` (amounts as strings, dates ISO)."""

        def amount(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        def party(p: Party) -> dict[str, str | None]:
            return {
                "name": p.name,
                "tax_id": p.tax_id,
                "tax_registration_id": p.tax_registration_id,
                "legal_id": p.legal_id,
            }

        return {
            "format": self.format.value,
            "syntax": self.syntax,
            "profile": self.profile,
            "invoice_number": self.invoice_number,
            "kind": self.kind.value,
            "type_code": self.type_code,
            "issue_date": self.issue_date.isoformat(),
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "currency": self.currency,
            "tax_currency": self.tax_currency,
            "total_amount": amount(self.total_amount),
            "prepaid_amount": amount(self.prepaid_amount),
            "payable_amount": amount(self.payable_amount),
            "tax_exclusive_amount": amount(self.tax_exclusive_amount),
            "tax_amount": amount(self.tax_amount),
            "rounding_amount": amount(self.rounding_amount),
            "seller": party(self.seller),
            "buyer": party(self.buyer),
            "payee": self.payee,
            "payment_account": self.payment_account,
            "payment_accounts": list(self.payment_accounts),
            "payment_bank": self.payment_bank,
            "preceding_invoice": self.preceding_invoice,
            "warnings": [w.to_json() for w in self.warnings],
        }
