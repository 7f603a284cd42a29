"""Reading values exactly and finishing a parse the same way for every format.

- :func:`parse_amount`: ``xs:decimal`` only (no ``250,33``, no ``2.5033E2``), white space stripped,
  bounded in size, returned as ``Decimal`` (never a float).
- :func:`parse_iso_date`, :func:`parse_cii_date`, :func:`parse_chinese_date`: the date forms the
  formats use.
- :class:`Draft` collects what a format parser read; :func:`finish` checks what every invoice must
  have, refuses unsafe text, and adds the warnings (tax-id checksums, due before issue, totals that
  do not add up, a negative invoice read as a credit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from stdnum.cn import uscc
from stdnum.eu import vat as eu_vat

from .errors import refuse
from .model import DocumentKind, InvoiceFormat, ParsedInvoice, ParseWarning, Party

# An amount has at most this many digits before and after the decimal point. 15 integer digits
# (below 10^15) keep every supported amount inside a signed 64-bit count of minor units.
MAX_INTEGER_DIGITS = 15
MAX_FRACTION_DIGITS = 6
_MAX_AMOUNT_CHARS = 64

# xs:decimal lexical space: optional sign, digits with an optional fraction; no exponent, no comma.
_DECIMAL = re.compile(r"[+-]?(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))")
_XML_SPACE = " \t\r\n"
_CURRENCY = re.compile(r"[A-Z]{3}")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_CII_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})", re.ASCII)
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?", re.ASCII)
_CN_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日", re.ASCII)

# UN/CEFACT 1001 codes that mean "credit" (EN 16931 lists 381 and 396 among others).
CREDIT_TYPE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)
INVOICE_TYPE_CODES = frozenset(
    {"71", "80", "82", "84", "102", "218", "219", "326", "331", "380", "382", "383", "384", "385",
     "386", "387", "388", "389", "390", "393", "394", "395", "456", "457", "527", "575", "623",
     "633", "751", "780", "875", "876", "877", "935"}
)  # fmt: skip

# C0/C1 controls (tab, LF, CR allowed), lone surrogates, and the bidirectional embeddings,
# overrides and isolates that make "gnp.exe" read as "exe.png".
_FORBIDDEN_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def parse_amount(raw: str | None, *, field: str) -> Decimal:
    """An exact amount from an element's full string value."""
    if raw is None:
        refuse("missing_field", f"no value for {field}", field=field)
    text = raw.strip(_XML_SPACE)
    if len(text) > _MAX_AMOUNT_CHARS:
        refuse("amount_out_of_range", f"{field} has too many digits", field=field)
    match = _DECIMAL.fullmatch(text)
    if match is None:
        refuse(
            "invalid_amount",
            f"{field} is not a decimal amount (digits and one '.' only)",
            field=field,
        )
    int_digits, frac_digits, only_frac = match.groups()
    integer = (int_digits or "").lstrip("0")
    fraction = frac_digits if frac_digits is not None else (only_frac or "")
    if len(integer) > MAX_INTEGER_DIGITS or len(fraction) > MAX_FRACTION_DIGITS:
        refuse(
            "amount_out_of_range",
            f"{field} has more than {MAX_INTEGER_DIGITS}.{MAX_FRACTION_DIGITS} digits",
            field=field,
        )
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        refuse("invalid_amount", f"{field} is not a decimal amount", field=field)


def optional_amount(raw: str | None, *, field: str) -> Decimal | None:
    return None if raw is None else parse_amount(raw, field=field)


def _make_date(year: str, month: str, day: str, *, field: str) -> date:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        refuse("invalid_date", f"{field} is not a calendar date", field=field)


def parse_iso_date(raw: str, *, field: str) -> date:
    """``YYYY-MM-DD`` (UBL ``xs:date`` without a zone)."""
    match = _ISO_DATE.fullmatch(raw.strip(_XML_SPACE))
    if match is None:
        refuse("invalid_date", f"{field} is not a YYYY-MM-DD date", field=field)
    return _make_date(*match.groups(), field=field)


def parse_cii_date(raw: str, fmt: str | None, *, field: str) -> date:
    """A CII ``DateTimeString`` of format 102 (``YYYYMMDD``)."""
    if fmt is not None and fmt.strip(_XML_SPACE) != "102":
        refuse("invalid_date", f"{field} has date format {fmt[:8]!r}, expected 102", field=field)
    match = _CII_DATE.fullmatch(raw.strip(_XML_SPACE))
    if match is None:
        refuse("invalid_date", f"{field} is not a YYYYMMDD date", field=field)
    return _make_date(*match.groups(), field=field)


def parse_chinese_date(raw: str, *, field: str) -> date:
    """开票日期 as written in 数电票 and legacy invoices: ``2025-03-18``, ``2025-03-18 16:05:42``,
    ``2025-03-18T16:05:42``, ``2025年03月18日`` or ``20250318``."""
    text = raw.strip(_XML_SPACE)
    if (match := _CN_DATE.fullmatch(text)) is not None:
        return _make_date(*match.groups(), field=field)
    head = re.split(r"[ T]", text, maxsplit=1)[0]
    if (match := _ISO_DATE.fullmatch(head)) is not None or (
        match := _CII_DATE.fullmatch(head)
    ) is not None:
        if head != text and not _TIME.fullmatch(text[len(head) + 1 :]):
            refuse("invalid_date", f"{field} has an unreadable time part", field=field)
        return _make_date(*match.groups(), field=field)
    refuse("invalid_date", f"{field} is not a date in a known form", field=field)


def check_text(value: str, *, field: str) -> str:
    """Refuse control characters and bidi overrides in a value that people will read."""
    found = _FORBIDDEN_CHARS.search(value)
    if found is not None:
        refuse(
            "forbidden_character",
            f"{field} contains the control character U+{ord(found.group()):04X}",
            field=field,
        )
    return value


@dataclass(slots=True)
class Draft:
    """What a format parser read, before the common checks. ``where`` names fields for errors."""

    format: InvoiceFormat
    syntax: str
    where: dict[str, str]
    invoice_number: str | None = None
    type_code: str | None = None
    kind: DocumentKind | None = None  # set when the root says so (UBL CreditNote, red-letter)
    issue_date: date | None = None
    due_date: date | None = None
    currency: str | None = None
    tax_currency: str | None = None
    seller: Party = field(default_factory=Party)
    buyer: Party = field(default_factory=Party)
    payable_amount: Decimal | None = None
    total_amount: Decimal | None = None
    prepaid_amount: Decimal | None = None
    tax_exclusive_amount: Decimal | None = None
    tax_amount: Decimal | None = None
    rounding_amount: Decimal | None = None
    payee: str | None = None
    payment_accounts: tuple[str, ...] = ()
    payment_bank: str | None = None
    preceding_invoices: tuple[str, ...] = ()
    profile: str | None = None
    warnings: list[ParseWarning] = field(default_factory=list)

    def warn(self, code: str, message: str, field_name: str | None = None) -> None:
        self.warnings.append(ParseWarning(code, message, field_name))


def _tax_id_warning(draft: Draft, role: str, party: Party) -> None:
    tax_id = party.tax_id
    if not tax_id:
        return
    name = draft.where.get(f"{role}.tax_id", f"{role}.tax_id")
    compact = tax_id.replace(" ", "").upper()
    if draft.currency == "CNY" and len(compact) == 18 and compact[:1].isdigit():
        if not uscc.is_valid(compact):
            draft.warn("tax_id_checksum", f"{role} USCC fails its check character", name)
        return
    if len(compact) > 2 and compact[:2].isalpha():
        try:
            valid = bool(eu_vat.is_valid(compact))
        except Exception:  # stdnum raises on countries it does not know
            return
        if not valid:
            draft.warn("tax_id_checksum", f"{role} VAT id fails its checksum", name)


def _required(draft: Draft) -> None:
    missing = [
        name
        for name, value in (
            ("invoice_number", draft.invoice_number),
            ("issue_date", draft.issue_date),
            ("currency", draft.currency),
            ("payable_amount", draft.payable_amount),
            ("seller.name", draft.seller.name),
        )
        if value is None or value == ""
    ]
    if missing:
        first = missing[0]
        refuse(
            "missing_field",
            f"required field(s) missing: {', '.join(missing)}",
            field=draft.where.get(first, first),
        )


def _check_party(role: str, party: Party, where: dict[str, str]) -> None:
    for attr in ("name", "tax_id", "tax_registration_id", "legal_id"):
        value = getattr(party, attr)
        if value is not None:
            name = f"{role}.{attr}"
            check_text(value, field=where.get(name, name))


def finish(draft: Draft) -> ParsedInvoice:
    """Common checks and warnings, then the immutable :class:`ParsedInvoice`."""
    _required(draft)
    assert draft.invoice_number is not None
    assert draft.issue_date is not None
    assert draft.currency is not None
    assert draft.payable_amount is not None
    where = draft.where
    if _CURRENCY.fullmatch(draft.currency) is None:
        refuse(
            "invalid_currency",
            "the document currency is not an ISO 4217 code",
            field=where.get("currency", "currency"),
        )
    if draft.tax_currency is not None and _CURRENCY.fullmatch(draft.tax_currency) is None:
        refuse("invalid_currency", "the tax currency is not an ISO 4217 code",
               field=where.get("tax_currency", "tax_currency"))  # fmt: skip
    for name in ("invoice_number", "type_code", "payee", "payment_bank"):
        value = getattr(draft, name)
        if value is not None:
            check_text(value, field=where.get(name, name))
    for value in (*draft.payment_accounts, *draft.preceding_invoices):
        check_text(value, field=where.get("payment_accounts", "payment_accounts"))
    _check_party("seller", draft.seller, where)
    _check_party("buyer", draft.buyer, where)

    kind = draft.kind
    code = (draft.type_code or "").strip()
    if kind is None:
        if code in CREDIT_TYPE_CODES:
            kind = DocumentKind.CREDIT_NOTE
        else:
            kind = DocumentKind.INVOICE
            if (
                code
                and code not in INVOICE_TYPE_CODES
                and draft.format
                not in (
                    InvoiceFormat.SHUDIAN_XML,
                    InvoiceFormat.OFD_XML,
                    InvoiceFormat.OFD_ZIP,
                )
            ):
                draft.warn(
                    "unknown_type_code",
                    f"type code {code[:8]!r} is not a known invoice code",
                    where.get("type_code"),
                )
    if kind is DocumentKind.INVOICE and draft.payable_amount < 0:
        kind = DocumentKind.CREDIT_NOTE
        draft.warn(
            "negative_invoice",
            "an invoice with a negative amount due is read as a credit note",
            where.get("payable_amount"),
        )

    if draft.due_date is not None and draft.due_date < draft.issue_date:
        draft.warn(
            "due_before_issue", "the due date is before the issue date", where.get("due_date")
        )
    if draft.total_amount is not None:
        expected = (
            draft.total_amount
            - (draft.prepaid_amount or Decimal(0))
            + (draft.rounding_amount or Decimal(0))
        )
        if expected != draft.payable_amount:
            draft.warn(
                "totals_inconsistent",
                "total minus prepaid plus rounding differs from the amount due",
                where.get("payable_amount"),
            )
    _tax_id_warning(draft, "seller", draft.seller)
    _tax_id_warning(draft, "buyer", draft.buyer)

    return ParsedInvoice(
        format=draft.format,
        syntax=draft.syntax,
        invoice_number=draft.invoice_number,
        kind=kind,
        type_code=draft.type_code,
        issue_date=draft.issue_date,
        due_date=draft.due_date,
        currency=draft.currency,
        tax_currency=draft.tax_currency,
        seller=draft.seller,
        buyer=draft.buyer,
        payable_amount=draft.payable_amount,
        total_amount=draft.total_amount,
        prepaid_amount=draft.prepaid_amount,
        tax_exclusive_amount=draft.tax_exclusive_amount,
        tax_amount=draft.tax_amount,
        rounding_amount=draft.rounding_amount,
        payee=draft.payee,
        payment_accounts=draft.payment_accounts,
        payment_bank=draft.payment_bank,
        preceding_invoices=draft.preceding_invoices,
        profile=draft.profile,
        warnings=tuple(draft.warnings),
    )
