"""Factur-X / ZUGFeRD / XRechnung PDFs: the invoice is the embedded XML, never the printed page.

The XML is taken from the PDF's embedded files (``factur-x.xml``, ``zugferd-invoice.xml``,
``ZUGFeRD-invoice.xml``, ``xrechnung.xml``; otherwise the one ``.xml`` attachment). Two invoice
attachments that differ are refused: which one would be the invoice is not ours to guess. pypdf's
decompression caps are lowered for the duration of the read (a deflate bomb stops at
``Limits.max_pdf_stream_bytes``), and the extracted XML goes through the same hardened parser as
an upload.
"""

from __future__ import annotations

import io
import logging

from pypdf import Configuration, PdfReader, apply_configuration, get_configuration
from pypdf.errors import LimitReachedError

from .errors import InvoiceParseError, refuse

INVOICE_ATTACHMENTS = frozenset(
    {"factur-x.xml", "zugferd-invoice.xml", "zugferd_invoice.xml", "xrechnung.xml"}
)

logging.getLogger("pypdf").setLevel(logging.ERROR)


def _caps(limit: int) -> Configuration:
    return get_configuration().with_overwrites(
        maximum_declared_stream_length=limit,
        array_based_stream_maximum_output_length=limit,
        jbig2_maximum_output_length=limit,
        lzw_maximum_output_length=limit,
        run_length_maximum_output_length=limit,
        zlib_maximum_output_length=limit,
        brotli_maximum_output_length=limit,
        image_maximum_buffer_size=limit,
        stream_decoding_work_maximum_length=4 * limit,
    )


def extract_invoice_xml(data: bytes, *, max_stream_bytes: int, max_xml_bytes: int) -> bytes:
    """The embedded invoice XML of a PDF, or a refusal."""
    try:
        with apply_configuration(_caps(max_stream_bytes)):
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                refuse("pdf_invalid", "encrypted PDFs are not accepted")
            attachments = reader.attachments
            names = list(attachments.keys())
            wanted = [n for n in names if n.lower() in INVOICE_ATTACHMENTS]
            if not wanted:
                wanted = [n for n in names if n.lower().endswith(".xml")]
            if not wanted:
                refuse("pdf_no_invoice_attachment", "the PDF embeds no invoice XML")
            contents: list[bytes] = []
            for name in wanted:
                for content in attachments[name]:
                    if len(content) > max_xml_bytes:
                        refuse(
                            "decompressed_too_large",
                            f"the embedded XML exceeds {max_xml_bytes} bytes",
                            field=name[:100],
                        )
                    contents.append(content)
    except InvoiceParseError:
        raise
    except LimitReachedError:
        refuse(
            "decompressed_too_large",
            f"a PDF stream decompresses to more than {max_stream_bytes} bytes",
        )
    except (RecursionError, MemoryError):
        refuse("pdf_invalid", "the PDF structure is too deep or too large to read")
    except Exception as exc:  # pypdf raises many kinds on malformed input
        refuse("pdf_invalid", f"the PDF cannot be read: {type(exc).__name__}")
    if len(set(contents)) > 1:
        refuse(
            "pdf_ambiguous_attachments",
            f"the PDF embeds {len(contents)} different invoice XMLs: {', '.join(wanted)[:200]}",
        )
    return contents[0]
