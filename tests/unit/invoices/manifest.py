"""The invoice conformance corpus (``../shared/conformance/invoices`` from the repository root):
its manifests as rows, and the comparison of a parsed invoice with a row's expected values.

Shared by ``test_invoice_conformance.py`` and ``bench/conformance_table.py`` so that the table in
docs/invoices.md is produced by exactly the checks the test makes. Reading notes (the corpus
README): UBL amounts are written ``value [currencyID]``; several values of a field are joined with
``|``; CII dates are normalised to ``YYYY-MM-DD``; everything else is verbatim. The synthetic
Chinese manifest annotates some values in parentheses (``CNY (implicit)``, ``(none in format)``,
``6200000000000000001/3 (bank acc in seller block)`` meaning account …1 for 数电票 and …3 for the
legacy files); :func:`_china_value` reads those annotations.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.api.invoices.parsing import DocumentKind, InvoiceParseError, ParsedInvoice, parse

REPO_ROOT = Path(__file__).resolve().parents[3]
CORPUS = REPO_ROOT.parent / "shared" / "conformance" / "invoices"

MANIFESTS = ("MANIFEST.tsv", "edge/MANIFEST.tsv", "china/MANIFEST-synthetic.tsv")

_AMOUNT = re.compile(r"(?P<value>\S+)(?: \[(?P<currency>[A-Z]{3})\])?")
_ANNOTATION = re.compile(r"\s*\([^()]*\)\s*$")


@dataclass(frozen=True)
class Row:
    manifest: str
    local_file: str
    expect: str  # "parse" or "refuse"
    values: dict[str, str]

    @property
    def path(self) -> Path:
        return CORPUS / self.local_file

    @property
    def id(self) -> str:
        return self.local_file


@dataclass
class Outcome:
    row: Row
    parsed: ParsedInvoice | None = None
    refusal: InvoiceParseError | None = None
    mismatches: list[tuple[str, str, str]] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        if self.row.expect == "refuse":
            return self.refusal is not None
        return self.parsed is not None and not self.mismatches


def corpus_available() -> bool:
    return (CORPUS / "MANIFEST.tsv").is_file()


def load_rows() -> list[Row]:
    rows: list[Row] = []
    for manifest in MANIFESTS:
        path = CORPUS / manifest
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            for record in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                values = {k: (v or "") for k, v in record.items() if k}
                rows.append(
                    Row(
                        manifest=manifest,
                        local_file=values["local_file"],
                        expect=values.get("expect") or "parse",
                        values=values,
                    )
                )
    return rows


def _amount_text(value: object) -> str:
    return "" if value is None else str(value)


def _check_amount(out: Outcome, name: str, expected: str, actual: object, currency: str) -> None:
    out.checked += 1
    if not expected:
        if actual is not None:
            out.mismatches.append((name, "", _amount_text(actual)))
        return
    match = _AMOUNT.fullmatch(expected)
    assert match is not None, f"unreadable expected amount {expected!r}"
    want_currency = match.group("currency")
    if _amount_text(actual) != match.group("value") or (
        want_currency is not None and want_currency != currency
    ):
        shown = _amount_text(actual) + (f" [{currency}]" if want_currency else "")
        out.mismatches.append((name, expected, shown))


def _check(out: Outcome, name: str, expected: str, actual: str | None) -> None:
    out.checked += 1
    if expected != (actual or ""):
        out.mismatches.append((name, expected, actual or ""))


def _china_value(name: str, raw: str, local_file: str) -> str | None:
    """The expected value behind an annotated synthetic-manifest cell (None: not comparable)."""
    value = _ANNOTATION.sub("", raw).strip()
    if raw.startswith("(none"):
        return ""
    if name == "type_code":
        if value.startswith("TypeCode "):
            return value.removeprefix("TypeCode ")
        return value if value.endswith("发票") else None
    if name == "customization_id":
        if local_file.endswith(".ofd"):
            return None  # the manifest gives the OFD container's version here
        return value.removeprefix("Version ")
    if name == "payment_account" and "/" in value:
        base, alternative = value.split("/", 1)
        return base if "shudian" in local_file else base[: -len(alternative)] + alternative
    return value


_TEXT_FIELDS: dict[str, Callable[[ParsedInvoice], str | None]] = {
    "customization_id": lambda p: p.profile,
    "type_code": lambda p: p.type_code,
    "invoice_number": lambda p: p.invoice_number,
    "issue_date": lambda p: p.issue_date.isoformat(),
    "due_date": lambda p: p.due_date.isoformat() if p.due_date else None,
    "seller_name": lambda p: p.seller.name,
    "seller_vat_id": lambda p: p.seller.tax_id,
    "seller_other_tax_id": lambda p: p.seller.tax_registration_id,
    "seller_legal_id": lambda p: p.seller.legal_id,
    "buyer_name": lambda p: p.buyer.name,
    "buyer_vat_id": lambda p: p.buyer.tax_id,
    "buyer_legal_id": lambda p: p.buyer.legal_id,
    "currency": lambda p: p.currency,
    "payee_name": lambda p: p.payee,
    "payment_account": lambda p: "|".join(p.payment_accounts) or None,
}
_AMOUNT_FIELDS: dict[str, Callable[[ParsedInvoice], object]] = {
    "grand_total_incl_vat": lambda p: p.total_amount,
    "prepaid": lambda p: p.prepaid_amount,
    "payable_amount": lambda p: p.payable_amount,
}


def compare(row: Row, parsed: ParsedInvoice, out: Outcome) -> None:
    """Every expected field of ``row`` the manifest has a column for, against ``parsed``."""
    china = row.manifest.startswith("china/")
    for name, getter in _TEXT_FIELDS.items():
        if name not in row.values:
            continue
        expected = _china_value(name, row.values[name], row.local_file) if china else None
        if china and expected is None:
            continue
        _check(out, name, row.values[name] if expected is None else expected, getter(parsed))
    for name, amount_getter in _AMOUNT_FIELDS.items():
        if name not in row.values:
            continue
        _check_amount(out, name, row.values[name], amount_getter(parsed), parsed.currency)
    if china:
        # red-letter (negative) Chinese invoices are credit notes, blue ones invoices
        negative = row.values.get("payable_amount", "").startswith("-")
        want = DocumentKind.CREDIT_NOTE if negative else DocumentKind.INVOICE
        _check(out, "kind", want.value, parsed.kind.value)


def run(row: Row) -> Outcome:
    out = Outcome(row)
    try:
        out.parsed = parse(row.path.read_bytes())
    except InvoiceParseError as exc:
        out.refusal = exc
        return out
    compare(row, out.parsed, out)
    return out
