from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from qilian.kit.money import Money, MoneyError, MoneyModel, quantize

amounts = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2)


def test_amount_converts_exactly_to_minor_units():
    assert Money.of("1250.50", "CNY") == Money(125050, "CNY")
    assert Money.of("1250.5", "CNY").amount == Decimal("1250.50")
    assert Money.of(7, "JPY").minor == 7


def test_more_decimals_than_the_currency_allows_is_refused():
    with pytest.raises(MoneyError, match="more than 2 decimals"):
        Money.of("0.001", "CNY")
    with pytest.raises(MoneyError):
        Money.of("1.5", "JPY")


def test_floats_are_refused():
    with pytest.raises(MoneyError, match="float"):
        Money.of(0.1, "CNY")
    with pytest.raises(ValidationError, match="float"):
        MoneyModel.model_validate({"amount": 0.1, "currency": "CNY"})


def test_unknown_currency_and_non_finite_amounts_are_refused():
    with pytest.raises(MoneyError, match="currency"):
        Money.of("1", "XXX")
    with pytest.raises(MoneyError, match="finite"):
        Money.of("NaN", "CNY")


def test_rounding_is_half_even_to_the_minor_unit():
    assert quantize(Decimal("0.125"), "CNY") == Decimal("0.12")
    assert quantize(Decimal("0.135"), "CNY") == Decimal("0.14")
    assert Money.rounded(Decimal("2.5"), "JPY").minor == 2


def test_mixing_currencies_is_refused():
    with pytest.raises(MoneyError, match="mismatch"):
        Money(1, "CNY") + Money(1, "USD")


@given(amounts, amounts)
def test_addition_and_subtraction_are_exact(a, b):
    x, y = Money.of(a, "CNY"), Money.of(b, "CNY")
    assert (x + y).amount == a + b
    assert (x + y - y) == x


@given(amounts)
def test_api_shape_round_trips_through_strings(a):
    model = MoneyModel.from_money(Money.of(a, "CNY"))
    again = MoneyModel.model_validate_json(model.model_dump_json())
    assert again.to_money() == Money.of(a, "CNY")
    assert isinstance(model.model_dump(mode="json")["amount"], str)
