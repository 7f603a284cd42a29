"""Amounts are exact: ``xs:decimal`` text in, the same ``Decimal`` out, through a whole document
too; every other notation is refused, and nothing ever passes through a float."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.api.invoices.parsing import InvoiceParseError, parse
from services.api.invoices.parsing.values import (
    MAX_FRACTION_DIGITS,
    MAX_INTEGER_DIGITS,
    parse_amount,
)

from .samples import ubl_invoice

amounts = st.decimals(
    min_value=Decimal(-(10**MAX_INTEGER_DIGITS) + 1),
    max_value=Decimal(10**MAX_INTEGER_DIGITS - 1),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
places = st.integers(min_value=0, max_value=MAX_FRACTION_DIGITS)


@given(amount=amounts)
def test_plain_decimal_text_reads_back_exactly(amount: Decimal) -> None:
    text = format(amount, "f")
    parsed = parse_amount(text, field="x")
    assert isinstance(parsed, Decimal)
    assert parsed == amount
    assert str(parsed) == text


@given(
    integer=st.integers(min_value=0, max_value=10**MAX_INTEGER_DIGITS - 1),
    fraction=st.text(alphabet="0123456789", max_size=MAX_FRACTION_DIGITS),
    sign=st.sampled_from(["", "-", "+"]),
    pad=st.sampled_from(["", " ", "\n  ", "\t"]),
)
def test_any_xs_decimal_is_read_exactly_and_padding_is_stripped(
    integer: int, fraction: str, sign: str, pad: str
) -> None:
    text = f"{sign}{integer}" + (f".{fraction}" if fraction else "")
    assert parse_amount(f"{pad}{text}{pad}", field="x") == Decimal(text)


@given(
    integer=st.integers(min_value=0, max_value=10**9),
    fraction=st.integers(min_value=0, max_value=99),
    separator=st.sampled_from([",", "E", "e", "_", "'", " ", "\u066b"]),
)
def test_other_notations_are_refused(integer: int, fraction: int, separator: str) -> None:
    with pytest.raises(InvoiceParseError) as caught:
        parse_amount(f"{integer}{separator}{fraction:02d}", field="x")
    assert caught.value.reason == "invalid_amount"
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "text", ["2.5033E2", "250,33", "1e3", "NaN", "Infinity", "0x10", "١٢٣", "", "-", ".", "1.2.3"]
)
def test_non_decimal_forms_are_refused(text: str) -> None:
    with pytest.raises(InvoiceParseError) as caught:
        parse_amount(text, field="x")
    assert caught.value.reason in ("invalid_amount", "missing_field")


@given(extra=st.integers(min_value=1, max_value=40))
def test_too_many_digits_is_out_of_range(extra: int) -> None:
    with pytest.raises(InvoiceParseError) as caught:
        parse_amount("9" * (MAX_INTEGER_DIGITS + extra), field="x")
    assert caught.value.reason == "amount_out_of_range"
    with pytest.raises(InvoiceParseError):
        parse_amount("1." + "1" * (MAX_FRACTION_DIGITS + extra), field="x")


def test_negative_zero_is_kept_as_written() -> None:
    assert str(parse_amount("-0.00", field="x")) == "-0.00"


@settings(max_examples=60, deadline=None)
@given(payable=amounts.filter(lambda d: d > 0), prepaid=amounts.filter(lambda d: d >= 0))
def test_amounts_survive_a_whole_ubl_document(payable: Decimal, prepaid: Decimal) -> None:
    total = payable + prepaid
    data = ubl_invoice(
        payable=format(payable, "f"), prepaid=format(prepaid, "f"), total=format(total, "f")
    )
    if abs(total) >= Decimal(10**MAX_INTEGER_DIGITS):
        with pytest.raises(InvoiceParseError):
            parse(data)
        return
    parsed = parse(data)
    assert parsed.payable_amount == payable
    assert parsed.prepaid_amount == prepaid
    assert parsed.total_amount == total
    assert str(parsed.payable_amount) == format(payable, "f")
    assert not any(w.code == "totals_inconsistent" for w in parsed.warnings)
