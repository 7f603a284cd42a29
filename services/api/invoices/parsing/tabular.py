"""The platform's own CSV and JSON invoice schemas (docs/invoices.md), for spreadsheet exports.

CSV: UTF-8 (a byte-order mark is allowed), comma-separated, a header row naming the columns in
:data:`COLUMNS` (any order, unknown columns refused), one invoice per row. JSON: one object with
the same fields, seller and buyer as nested objects; amounts are strings (a JSON number would go
through a float and is refused). :func:`parse_csv` / :func:`parse_json` read exactly one invoice;
:func:`iter_csv` / :func:`iter_ndjson` read many, one result or refusal per row, for bulk imports.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from .errors import InvoiceParseError, refuse
from .model import DocumentKind, InvoiceFormat, ParsedInvoice, Party
from .values import Draft, finish, optional_amount, parse_iso_date

COLUMNS: tuple[str, ...] = (
    "invoice_number",
    "kind",
    "type_code",
    "issue_date",
    "due_date",
    "currency",
    "seller_name",
    "seller_tax_id",
    "seller_legal_id",
    "buyer_name",
    "buyer_tax_id",
    "buyer_legal_id",
    "total_amount",
    "prepaid_amount",
    "payable_amount",
    "payee_name",
    "payment_account",
    "preceding_invoice",
)
_PARTY_KEYS = frozenset({"name", "tax_id", "legal_id"})
_JSON_KEYS = frozenset(
    {c for c in COLUMNS if not c.startswith(("seller_", "buyer_"))} | {"seller", "buyer"}
)


def _decode(data: bytes, reason: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        refuse(reason, "the document is not valid UTF-8")


def _draft(row: dict[str, str | None], fmt: InvoiceFormat, where_prefix: str) -> ParsedInvoice:
    def get(name: str) -> str | None:
        value = row.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    where = {name: f"{where_prefix}{name}" for name in COLUMNS}
    where.update(
        {
            "seller.name": f"{where_prefix}seller_name",
            "seller.tax_id": f"{where_prefix}seller_tax_id",
            "buyer.name": f"{where_prefix}buyer_name",
            "buyer.tax_id": f"{where_prefix}buyer_tax_id",
            "payee": f"{where_prefix}payee_name",
            "payment_accounts": f"{where_prefix}payment_account",
        }
    )
    draft = Draft(format=fmt, syntax=f"qilian-{fmt.value}-1", where=where)
    draft.invoice_number = get("invoice_number")
    draft.type_code = get("type_code")
    kind = get("kind")
    if kind is not None:
        try:
            draft.kind = DocumentKind(kind)
        except ValueError:
            refuse("invalid_value", "kind must be invoice or credit_note", field=where["kind"])
    issue = get("issue_date")
    draft.issue_date = parse_iso_date(issue, field=where["issue_date"]) if issue else None
    due = get("due_date")
    draft.due_date = parse_iso_date(due, field=where["due_date"]) if due else None
    draft.currency = get("currency")
    draft.seller = Party(
        name=get("seller_name"), tax_id=get("seller_tax_id"), legal_id=get("seller_legal_id")
    )
    draft.buyer = Party(
        name=get("buyer_name"), tax_id=get("buyer_tax_id"), legal_id=get("buyer_legal_id")
    )
    for name in ("total_amount", "prepaid_amount", "payable_amount"):
        setattr(draft, name, optional_amount(get(name), field=where[name]))
    draft.payee = get("payee_name")
    account = get("payment_account")
    draft.payment_accounts = (account,) if account else ()
    preceding = get("preceding_invoice")
    draft.preceding_invoices = (preceding,) if preceding else ()
    return finish(draft)


def _csv_rows(data: bytes) -> Iterator[tuple[int, dict[str, str | None]]]:
    text = _decode(data, "csv_invalid")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        refuse("csv_invalid", "the CSV has no header row")
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        refuse("csv_invalid", f"unknown CSV column(s): {', '.join(unknown)[:200]}")
    if len(set(names)) != len(names):
        refuse("csv_invalid", "a CSV column appears twice")
    try:
        for line_no, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                refuse(
                    "csv_invalid",
                    f"row {line_no} has {len(cells)} cells for {len(names)} columns",
                    field=f"row {line_no}",
                )
            yield line_no, dict(zip(names, cells, strict=True))
    except csv.Error as exc:
        refuse("csv_invalid", f"the CSV is malformed: {str(exc)[:100]}")


def iter_csv(data: bytes) -> Iterator[ParsedInvoice | InvoiceParseError]:
    """One parsed invoice or refusal per data row (a malformed file refuses as a whole)."""
    for line_no, row in _csv_rows(data):
        try:
            yield _draft(row, InvoiceFormat.CSV, f"row {line_no}: ")
        except InvoiceParseError as exc:
            yield exc


def parse_csv(data: bytes) -> ParsedInvoice:
    """Exactly one invoice from a CSV."""
    rows = list(_csv_rows(data))
    if len(rows) != 1:
        refuse("csv_invalid", f"expected one invoice row, found {len(rows)}")
    return _draft(rows[0][1], InvoiceFormat.CSV, "")


def _json_row(obj: Any, where_prefix: str) -> dict[str, str | None]:
    if not isinstance(obj, dict):
        refuse("json_invalid", "an invoice must be a JSON object")
    unknown = sorted(set(obj) - _JSON_KEYS)
    if unknown:
        refuse("json_invalid", f"unknown field(s): {', '.join(unknown)[:200]}")
    row: dict[str, str | None] = {}
    for key, value in obj.items():
        if key in ("seller", "buyer"):
            if value is None:
                continue
            if not isinstance(value, dict) or set(value) - _PARTY_KEYS:
                refuse(
                    "json_invalid",
                    f"{key} must be an object with name, tax_id, legal_id",
                    field=f"{where_prefix}{key}",
                )
            for sub, subvalue in value.items():
                row[f"{key}_{sub}"] = _json_string(subvalue, f"{where_prefix}{key}.{sub}")
        else:
            row[key] = _json_string(value, f"{where_prefix}{key}")
    return row


def _json_string(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    refuse("json_invalid", "values must be strings (amounts too: no JSON numbers)", field=field)


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        refuse("json_invalid", f"not valid JSON: {str(exc)[:100]}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_json(data: bytes) -> ParsedInvoice:
    """Exactly one invoice from a JSON object."""
    obj = _loads(_decode(data, "json_invalid"))
    return _draft(_json_row(obj, ""), InvoiceFormat.JSON, "")


def iter_ndjson(data: bytes) -> Iterator[ParsedInvoice | InvoiceParseError]:
    """One parsed invoice or refusal per non-empty line of newline-delimited JSON."""
    text = _decode(data, "json_invalid")
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = _loads(line)
            yield _draft(
                _json_row(obj, f"line {line_no}: "), InvoiceFormat.JSON, f"line {line_no}: "
            )
        except InvoiceParseError as exc:
            yield exc
