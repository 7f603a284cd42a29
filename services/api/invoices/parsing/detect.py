"""Which format a file is, from its bytes alone (a file name or a client's content type never
decides).

:func:`sniff` finds the container (PDF, ZIP, XML, JSON, CSV) from the leading bytes; for XML the
format is the root element's exact ``{namespace}localname`` (:data:`ROOTS`): an ``Invoice`` in
the wrong namespace, or an unknown root, is refused rather than guessed at. :func:`detect` does
both, parsing XML with the hardened parser.
"""

from __future__ import annotations

import zipfile
from enum import StrEnum

from lxml import etree

from .china import open_zip
from .cii import CII_NS, ZUGFERD1_NS
from .errors import refuse
from .facturx import extract_invoice_xml
from .limits import DEFAULT_LIMITS, Limits
from .model import InvoiceFormat
from .ubl import CREDIT_NOTE_NS, INVOICE_NS
from .xml import parse_xml, qname


class Container(StrEnum):
    PDF = "pdf"
    ZIP = "zip"
    XML = "xml"
    JSON = "json"
    CSV = "csv"


ROOTS: dict[tuple[str, str], InvoiceFormat] = {
    (INVOICE_NS, "Invoice"): InvoiceFormat.UBL_INVOICE,
    (CREDIT_NOTE_NS, "CreditNote"): InvoiceFormat.UBL_CREDIT_NOTE,
    (CII_NS, "CrossIndustryInvoice"): InvoiceFormat.CII,
    (ZUGFERD1_NS, "CrossIndustryDocument"): InvoiceFormat.ZUGFERD_1,
    ("", "EInvoice"): InvoiceFormat.SHUDIAN_XML,
    ("", "eInvoice"): InvoiceFormat.OFD_XML,
}

# Content types that name a container; anything else (octet-stream, none) says nothing.
CONTENT_TYPES: dict[str, Container] = {
    "application/pdf": Container.PDF,
    "application/zip": Container.ZIP,
    "application/ofd": Container.ZIP,
    "application/x-zip-compressed": Container.ZIP,
    "application/xml": Container.XML,
    "text/xml": Container.XML,
    "application/json": Container.JSON,
    "text/csv": Container.CSV,
}

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_SPACE = b" \t\r\n"


def declared_container(content_type: str | None) -> Container | None:
    """The container a client's content type names, if it names one."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media.endswith("+xml"):
        return Container.XML
    return CONTENT_TYPES.get(media)


def sniff(data: bytes, content_type: str | None = None) -> Container:
    """The container of ``data``; ``content_type`` only breaks a tie for headerless text."""
    if not data.strip(_SPACE):
        refuse("empty_document", "the document is empty")
    if data.startswith(b"%PDF-"):
        return Container.PDF
    if data.startswith(b"PK\x03\x04"):
        return Container.ZIP
    if data.startswith(_BOMS[1:]) or data.startswith((b"<\x00", b"\x00<")):
        return Container.XML
    body = data[3:] if data.startswith(_BOMS[0]) else data
    head = body.lstrip(_SPACE)[:1]
    if head == b"<" or body.startswith(_BOMS[0]):
        return Container.XML  # a second BOM, or XML after white space, is refused by the parser
    if head in (b"{", b"["):
        return Container.JSON
    first_line = body[:4096].split(b"\n", 1)[0]
    if b"invoice_number" in first_line.lower() and b"," in first_line:
        return Container.CSV
    declared = declared_container(content_type)
    if declared in (Container.CSV, Container.JSON):
        return declared
    refuse("unknown_format", "not an invoice format the platform reads")


def format_of_root(root: etree._Element) -> InvoiceFormat:
    """The XML format named by the root's exact qualified name."""
    namespace, local = qname(root)
    found = ROOTS.get((namespace, local))
    if found is None:
        shown = f"{{{namespace[:80]}}}{local[:40]}" if namespace else local[:40]
        refuse("unknown_root_element", f"root element {shown} is not a known invoice document")
    return found


def is_ofd(data: bytes) -> bool:
    """A ZIP is an OFD package when it has an ``OFD.xml`` entry point."""
    archive = open_zip(data)
    with archive:
        try:
            return any(i.filename == "OFD.xml" for i in archive.infolist())
        except zipfile.BadZipFile:
            return False


def detect(
    data: bytes, content_type: str | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> InvoiceFormat:
    """The invoice format of ``data`` (refused if it is none of them)."""
    container = sniff(data, content_type)
    if container is Container.PDF:
        extract_invoice_xml(
            data, max_stream_bytes=limits.max_pdf_stream_bytes, max_xml_bytes=limits.max_xml_bytes
        )
        return InvoiceFormat.FACTURX_PDF
    if container is Container.ZIP:
        if not is_ofd(data):
            refuse("unknown_format", "a ZIP that is not an OFD package")
        return InvoiceFormat.OFD_ZIP
    if container is Container.JSON:
        return InvoiceFormat.JSON
    if container is Container.CSV:
        return InvoiceFormat.CSV
    return format_of_root(parse_xml(data, limits=limits))
