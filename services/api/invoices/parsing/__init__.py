"""Invoice parsing: any supported file in, one :class:`ParsedInvoice` out, or a refusal.

``parse(data)`` detects the format from the content (UBL 2.1 Invoice/CreditNote, CII D16B,
ZUGFeRD 1.0, Factur-X/ZUGFeRD PDF, 数电票 XML, legacy OFD XML and OFD ZIP, CSV, JSON), reads it
with the hardened parsers, and returns the normalised invoice with warnings; anything unreadable,
unsafe or ambiguous raises :class:`InvoiceParseError` (a ``QilianError``: 413, 415 or 422 with a
``reason`` code and, where known, the ``field`` XPath). Nothing is stored and no business rule is
applied here: whether the buyer is registered or the invoice a duplicate is decided by callers.
"""

from __future__ import annotations

from lxml import etree

from .china import parse_legacy, parse_ofd, parse_shudian
from .cii import parse_cii
from .detect import Container, declared_container, detect, format_of_root, is_ofd, sniff
from .errors import (
    REASONS,
    InvoiceInvalid,
    InvoiceParseError,
    InvoiceTooLarge,
    InvoiceUnsupported,
    refuse,
)
from .facturx import extract_invoice_xml
from .limits import DEFAULT_LIMITS, Limits
from .model import DocumentKind, InvoiceFormat, ParsedInvoice, ParseWarning, Party
from .tabular import COLUMNS, iter_csv, iter_ndjson, parse_csv, parse_json
from .ubl import parse_ubl
from .values import Draft, finish
from .xml import parse_xml

__all__ = [
    "COLUMNS",
    "DEFAULT_LIMITS",
    "REASONS",
    "DocumentKind",
    "InvoiceFormat",
    "InvoiceInvalid",
    "InvoiceParseError",
    "InvoiceTooLarge",
    "InvoiceUnsupported",
    "Limits",
    "ParseWarning",
    "ParsedInvoice",
    "Party",
    "detect",
    "iter_csv",
    "iter_ndjson",
    "parse",
]


def _from_root(root: etree._Element, container_format: InvoiceFormat | None) -> Draft:
    fmt = format_of_root(root)
    if fmt in (InvoiceFormat.UBL_INVOICE, InvoiceFormat.UBL_CREDIT_NOTE):
        return parse_ubl(root, fmt=container_format)
    if fmt in (InvoiceFormat.CII, InvoiceFormat.ZUGFERD_1):
        return parse_cii(root, fmt=container_format)
    if container_format is InvoiceFormat.FACTURX_PDF:
        refuse("unknown_root_element", "a PDF's embedded XML must be CII, ZUGFeRD or UBL")
    if fmt is InvoiceFormat.SHUDIAN_XML:
        return parse_shudian(root)
    return parse_legacy(root)


def parse(
    data: bytes, *, content_type: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> ParsedInvoice:
    """Parse one invoice file. ``content_type`` is a hint only: the content decides the format
    (a contradicting hint adds a ``content_type_mismatch`` warning)."""
    if len(data) > limits.max_upload_bytes:
        refuse("too_large", f"invoice files are limited to {limits.max_upload_bytes} bytes")
    container = sniff(data, content_type)
    if container in (Container.CSV, Container.JSON):
        if len(data) > limits.max_tabular_bytes:
            refuse(
                "too_large", f"a CSV/JSON invoice is limited to {limits.max_tabular_bytes} bytes"
            )
        return parse_csv(data) if container is Container.CSV else parse_json(data)
    if container is Container.PDF:
        xml = extract_invoice_xml(
            data, max_stream_bytes=limits.max_pdf_stream_bytes, max_xml_bytes=limits.max_xml_bytes
        )
        draft = _from_root(parse_xml(xml, limits=limits), InvoiceFormat.FACTURX_PDF)
    elif container is Container.ZIP:
        if not is_ofd(data):
            refuse("unknown_format", "a ZIP that is not an OFD package")
        draft = parse_ofd(data, limits=limits, parse_xml=lambda b: parse_xml(b, limits=limits))
    else:
        draft = _from_root(parse_xml(data, limits=limits), None)
    declared = declared_container(content_type)
    if declared is not None and declared is not container:
        draft.warn(
            "content_type_mismatch",
            f"sent as {declared.value} but the content is {container.value}; the content decides",
        )
    return finish(draft)
