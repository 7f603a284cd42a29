"""Size and count caps applied before and during parsing (docs/invoices.md lists them)."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps for one parse; the defaults suit single uploads. All sizes in bytes."""

    max_upload_bytes: int = 20 * MiB  # any input, checked before anything else
    max_xml_bytes: int = 10 * MiB  # an XML document, also after extraction from PDF or ZIP
    max_tabular_bytes: int = 1 * MiB  # one CSV or JSON invoice
    max_attribute_chars: int = 4096  # no attribute in these formats comes near this
    max_pdf_stream_bytes: int = 16 * MiB  # any decompressed PDF stream (pypdf's own caps lowered)
    max_zip_members: int = 256
    max_zip_total_bytes: int = 32 * MiB  # sum of declared uncompressed sizes
    max_zip_ratio: int = 100  # uncompressed / compressed, per member


DEFAULT_LIMITS = Limits()
