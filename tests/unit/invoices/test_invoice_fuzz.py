"""Whatever bytes arrive, ``parse`` returns an invoice or raises ``InvoiceParseError`` — never
another exception (which the API would turn into a 500)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.invoices.parsing import InvoiceParseError, ParsedInvoice, parse

from .manifest import CORPUS
from .samples import cii_invoice, ofd_zip, shudian_invoice, ubl_invoice

SEEDS: list[bytes] = [
    ubl_invoice(),
    cii_invoice(),
    shudian_invoice(),
    ofd_zip({"Doc_0/Attachs/original_invoice.xml": shudian_invoice()}),
    b"invoice_number,issue_date,currency,seller_name,payable_amount\nA,2026-01-01,EUR,S,1.00\n",
    b'{"invoice_number":"1","issue_date":"2026-01-01","currency":"EUR",'
    b'"seller":{"name":"S"},"payable_amount":"1.00"}',
]
_PDF = CORPUS / "mustangproject" / "MustangBeispiel20221026.pdf"
if _PDF.is_file():
    SEEDS.append(_PDF.read_bytes())


_INSERTS = [b"<", b">", b"&", b"<!--", b"]]>", b"\x00", b"\xef\xbb\xbf", b"<!DOCTYPE x>"]
_INSERTS += [b"-", b".", b"E5", b",", b"\xff\xfe", b"\\", b'"', b"\n"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        pos = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(min_value=0, max_value=255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(_INSERTS))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(min_value=1, max_value=64))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            data[pos:pos] = other[: draw(st.integers(min_value=0, max_value=200))]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), content_type=st.sampled_from([None, "application/xml", "text/csv"]))
def test_mutated_inputs_parse_or_are_refused(data: bytes, content_type: str | None) -> None:
    outcome: ParsedInvoice | InvoiceParseError
    try:
        outcome = parse(data, content_type=content_type)
    except InvoiceParseError as exc:
        outcome = exc
    if isinstance(outcome, InvoiceParseError):
        assert 400 <= outcome.status < 500
        assert outcome.reason
    else:
        assert isinstance(outcome, ParsedInvoice)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_seed_parses(seed: int) -> None:
    assert isinstance(parse(SEEDS[seed]), ParsedInvoice)
