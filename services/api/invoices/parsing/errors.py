"""Why an invoice file was refused: one exception class per HTTP status, one ``reason`` code each.

Every refusal is an :class:`InvoiceParseError`, and also one of the kit's ``QilianError`` classes
(``InvalidInput`` 422, ``PayloadTooLarge`` 413, ``UnsupportedMediaType`` 415), so the one error
handler renders it as problem+json with ``reason`` and, where known, ``field`` (an XPath or a
column name). Use :func:`refuse` to raise: it picks the class from the reason code.

Details never quote the document's content beyond the offending field's name: a refusal must not
echo what an entity or include would have pulled in.
"""

from __future__ import annotations

from typing import Any, NoReturn

from qilian.kit.errors import InvalidInput, PayloadTooLarge, QilianError, UnsupportedMediaType

# reason code -> HTTP status. The codes are part of the API: add, never rename.
REASONS: dict[str, int] = {
    # 413: too big before or after decompression
    "too_large": 413,
    "decompressed_too_large": 413,
    # 415: not an invoice format this platform reads
    "unknown_format": 415,
    "unknown_root_element": 415,
    # 422: the bytes are not a well-formed, safe document
    "empty_document": 422,
    "xml_malformed": 422,
    "xml_limit_exceeded": 422,
    "doctype_forbidden": 422,
    "xinclude_forbidden": 422,
    "encoding_conflict": 422,
    "unsupported_encoding": 422,
    "attribute_too_large": 422,
    "forbidden_character": 422,
    # 422: containers
    "pdf_invalid": 422,
    "pdf_no_invoice_attachment": 422,
    "pdf_ambiguous_attachments": 422,
    "zip_invalid": 422,
    "zip_unsafe_path": 422,
    "zip_too_many_members": 422,
    "zip_compression_ratio": 422,
    "ofd_no_invoice": 422,
    "ofd_ambiguous_invoice": 422,
    # 422: well-formed, but the invoice content is wrong
    "missing_field": 422,
    "duplicate_element": 422,
    "invalid_amount": 422,
    "amount_out_of_range": 422,
    "currency_mismatch": 422,
    "invalid_currency": 422,
    "invalid_date": 422,
    "invalid_value": 422,
    "csv_invalid": 422,
    "json_invalid": 422,
}


class InvoiceParseError(QilianError):
    """Base of every refusal by the invoice parsers; ``reason`` is a code from :data:`REASONS`."""

    reason: str
    field: str | None

    def __init__(self, reason: str, detail: str, *, field: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown invoice refusal reason {reason!r}")
        extra: dict[str, Any] = {"reason": reason}
        if field is not None:
            extra["field"] = field
        super().__init__(detail, extra=extra)
        self.reason = reason
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.detail!r}, field={self.field!r})"


class InvoiceInvalid(InvoiceParseError, InvalidInput):
    """422: unreadable, unsafe or invalid document."""


class InvoiceTooLarge(InvoiceParseError, PayloadTooLarge):
    """413: over a size cap, before or after decompression."""


class InvoiceUnsupported(InvoiceParseError, UnsupportedMediaType):
    """415: not a format the platform reads."""


_CLASSES: dict[int, type[InvoiceParseError]] = {
    413: InvoiceTooLarge,
    415: InvoiceUnsupported,
    422: InvoiceInvalid,
}


def refusal(reason: str, detail: str, *, field: str | None = None) -> InvoiceParseError:
    """The refusal for ``reason``, of the class its status calls for."""
    if reason not in REASONS:
        raise ValueError(f"unknown invoice refusal reason {reason!r}")
    return _CLASSES[REASONS[reason]](reason, detail, field=field)


def refuse(reason: str, detail: str, *, field: str | None = None) -> NoReturn:
    """Raise the refusal for ``reason``."""
    raise refusal(reason, detail, field=field)
