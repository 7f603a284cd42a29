"""The one hardened XML parser every invoice format goes through.

Before libxml2 sees a byte: the size cap, the byte-order mark against the declared encoding, an
allow-list of encodings, and the prolog scanned for a DOCTYPE (refused outright: no format here
needs one, and lxml with ``resolve_entities=False`` would silently *drop* entity references rather
than fail). The parser itself resolves no entities, loads no DTD, touches no network, keeps
libxml2's depth (256) and text-size (10 MB) limits (``huge_tree=False``), and never runs XInclude.
After parsing: any XInclude element and any oversized attribute are refused. Stylesheet PIs and
``xsi:schemaLocation`` are data, never followed.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from .errors import refuse
from .limits import DEFAULT_LIMITS, Limits

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_LE_BOM = b"\xff\xfe"
_UTF16_BE_BOM = b"\xfe\xff"
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")

# Encodings a declaration may name. Anything else (UTF-7, EBCDIC, …) is refused.
_ALLOWED_ENCODINGS = frozenset(
    {"utf-8", "utf8", "utf-16", "utf-16le", "utf-16be", "iso-8859-1", "latin1", "iso-8859-15",
     "us-ascii", "ascii", "windows-1252", "cp1252", "gb18030", "gbk", "gb2312"}
)  # fmt: skip
_UTF16_NAMES = frozenset({"utf-16", "utf-16le", "utf-16be"})
_UTF8_NAMES = frozenset({"utf-8", "utf8"})

_XML_DECL = re.compile(rb"<\?xml[ \t\r\n]")
_DECL_ENCODING = re.compile(rb"""encoding[ \t\r\n]*=[ \t\r\n]*["']([A-Za-z0-9._-]{1,40})["']""")
_SPACE = re.compile(rb"[ \t\r\n]*")
_LIMIT_MESSAGES = ("Excessive depth", "Resource limit", "amplification", "huge", "Huge")

_local = threading.local()


def _parser() -> etree.XMLParser:
    """A per-thread hardened parser (lxml parsers must not be shared between threads)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            recover=False,
            collect_ids=False,
            remove_comments=False,
            remove_pis=False,
            strip_cdata=True,
        )
        _local.parser = parser
    return parser


def _prolog_bytes(data: bytes) -> tuple[str | None, bytes]:
    """The byte-order mark's encoding (if any) and the document as ASCII-compatible bytes."""
    if data.startswith(_UTF32_BOMS):
        refuse("unsupported_encoding", "UTF-32 documents are not accepted")
    if data.startswith(_UTF8_BOM):
        return "utf-8", data[3:]
    if data.startswith(_UTF16_LE_BOM):
        return "utf-16", data[2:].decode("utf-16-le", errors="replace").encode("utf-8")
    if data.startswith(_UTF16_BE_BOM):
        return "utf-16", data[2:].decode("utf-16-be", errors="replace").encode("utf-8")
    if data.startswith(b"<\x00"):
        return None, data.decode("utf-16-le", errors="replace").encode("utf-8")
    if data.startswith(b"\x00<"):
        return None, data.decode("utf-16-be", errors="replace").encode("utf-8")
    return None, data


def check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE, a BOM that contradicts the declaration, or a non-allowed encoding."""
    bom, text = _prolog_bytes(data)
    pos = 0
    declared: str | None = None
    if _XML_DECL.match(text):
        end = text.find(b"?>")
        if end < 0:
            return  # malformed: libxml2 says so
        match = _DECL_ENCODING.search(text, 0, end)
        if match is not None:
            declared = match.group(1).decode("ascii").lower()
        pos = end + 2
    if declared is not None:
        if declared not in _ALLOWED_ENCODINGS:
            refuse("unsupported_encoding", f"encoding {declared!r} is not accepted")
        if bom == "utf-8" and declared not in _UTF8_NAMES:
            refuse(
                "encoding_conflict", f"a UTF-8 byte-order mark but encoding {declared!r} declared"
            )
        if bom == "utf-16" and declared not in _UTF16_NAMES:
            refuse(
                "encoding_conflict", f"a UTF-16 byte-order mark but encoding {declared!r} declared"
            )
    while True:
        match = _SPACE.match(text, pos)
        pos = match.end() if match else pos
        if text.startswith(b"<!--", pos):
            end = text.find(b"-->", pos + 4)
            if end < 0:
                return
            pos = end + 3
        elif text.startswith(b"<?", pos):
            end = text.find(b"?>", pos + 2)
            if end < 0:
                return
            pos = end + 2
        elif text.startswith(b"<!", pos):
            if text[pos : pos + 9].upper() == b"<!DOCTYPE":
                refuse("doctype_forbidden", "a DOCTYPE is not allowed in an invoice")
            return
        else:
            return


def parse_xml(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """The root element of ``data``, parsed safely, or an ``InvoiceParseError``."""
    if len(data) > limits.max_xml_bytes:
        refuse("too_large", f"XML documents are limited to {limits.max_xml_bytes} bytes")
    if not data.strip(b" \t\r\n"):
        refuse("empty_document", "the document is empty")
    check_prolog(data)
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        message = str(exc.msg or exc)[:160]
        line = exc.lineno
        if any(marker in message for marker in _LIMIT_MESSAGES):
            refuse("xml_limit_exceeded", f"XML parser limit exceeded: {message} (line {line})")
        if "Document is empty" in message:
            refuse("empty_document", "the document is empty")
        refuse("xml_malformed", f"not well-formed XML: {message} (line {line})")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        refuse("doctype_forbidden", "a DOCTYPE is not allowed in an invoice")
    if root.xpath("boolean(//xi:*)", namespaces={"xi": XINCLUDE_NS}):
        refuse("xinclude_forbidden", "XInclude elements are not allowed in an invoice")
    if root.xpath("boolean(//@*[string-length() > $n])", n=limits.max_attribute_chars):
        refuse(
            "attribute_too_large",
            f"an attribute value exceeds {limits.max_attribute_chars} characters",
        )
    return root


def qname(root: etree._Element) -> tuple[str, str]:
    """``(namespace, local name)`` of an element ("" for no namespace)."""
    q = etree.QName(root)
    return q.namespace or "", q.localname


def text_of(element: etree._Element) -> str:
    """The element's full string value (XPath ``string()``): text in comments and PIs excluded,
    text around them and in CDATA included. ``.text`` alone would stop at the first comment."""
    if len(element) == 0:
        return element.text or ""
    return "".join(element.itertext())
