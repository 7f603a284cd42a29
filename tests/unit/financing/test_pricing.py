"""The offer arithmetic against an independent computation: exact rationals (``Fraction``) and a
hand-written half-even rounding, for both day counts (API.md, "Money arithmetic for offers")."""

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qilian.kit.money import Money
from services.api.financing.pricing import DayCount, PricingError, Terms, quote


def half_even(value: Fraction, places: int) -> Fraction:
    """Round a rational to ``places`` decimals, ties to even — written without Decimal."""
    scaled = value * 10**places
    floor = scaled.numerator // scaled.denominator
    rest = scaled - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return Fraction(floor, 10**places)


def independent(
    face_minor: int,
    exponent: int,
    advance: Decimal,
    rate: Decimal,
    fee_minor: int,
    days: int,
    basis: int,
) -> tuple[Fraction, Fraction, Fraction, Fraction]:
    face = Fraction(face_minor, 10**exponent)
    fee = Fraction(fee_minor, 10**exponent)
    advance_amount = face * Fraction(advance)
    discount = advance_amount * Fraction(rate) * days / basis
    net = advance_amount - discount - fee
    effective = (face * Fraction(advance) - net) / net * basis / days
    return advance_amount, discount, net, effective


def as_fraction(money: Money) -> Fraction:
    return Fraction(money.minor, 10 ** {"CNY": 2, "JPY": 0, "KWD": 3}[money.currency])


rates = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1"), places=4)
annual = st.decimals(min_value=Decimal("0"), max_value=Decimal("0.36"), places=6)
currencies = st.sampled_from([("CNY", 2), ("JPY", 0), ("KWD", 3)])


@settings(max_examples=400, deadline=None)
@given(
    currency=currencies,
    face_minor=st.integers(min_value=100, max_value=10**13),
    advance=rates,
    rate=annual,
    fee_share=st.fractions(min_value=0, max_value=Fraction(1, 20)),
    days=st.integers(min_value=1, max_value=720),
    day_count=st.sampled_from(list(DayCount)),
)
def test_quote_matches_an_independent_rational_computation(
    currency, face_minor, advance, rate, fee_share, days, day_count
):
    code, exponent = currency
    fee_minor = int(face_minor * fee_share)
    on = date(2026, 11, 29)
    terms = Terms(advance, rate, Money(fee_minor, code), day_count)
    basis = 360 if day_count == DayCount.act_360 else 365
    advance_amount, discount, net, effective = independent(
        face_minor, exponent, advance, rate, fee_minor, days, basis
    )
    if net <= 0:
        with pytest.raises(PricingError):
            quote(Money(face_minor, code), on + timedelta(days=days), on, terms)
        return
    got = quote(Money(face_minor, code), on + timedelta(days=days), on, terms)
    assert got.days == days
    assert as_fraction(got.advance_amount) == half_even(advance_amount, exponent)
    assert as_fraction(got.discount) == half_even(discount, exponent)
    assert as_fraction(got.net_proceeds) == half_even(net, exponent)
    assert Fraction(got.effective_annual_rate) == half_even(effective, 8)


def test_worked_example_act_360_and_act_365():
    face = Money.of("1000000.00", "CNY")
    on = date(2026, 12, 1)
    due = on + timedelta(days=90)
    fee = Money.of("500.00", "CNY")
    q360 = quote(face, due, on, Terms(Decimal("0.9"), Decimal("0.0385"), fee, DayCount.act_360))
    assert str(q360.advance_amount) == "900000.00 CNY"
    assert str(q360.discount) == "8662.50 CNY"  # 900000 × 0.0385 × 90 / 360
    assert str(q360.net_proceeds) == "890837.50 CNY"
    # (900000 − 890837.50) / 890837.50 × 360 / 90
    assert q360.effective_annual_rate == Decimal("0.04114106")  # 0.041141061…
    q365 = quote(face, due, on, Terms(Decimal("0.9"), Decimal("0.0385"), fee, DayCount.act_365))
    assert str(q365.discount) == "8543.84 CNY"  # 8543.835616… rounds up
    assert str(q365.net_proceeds) == "890956.16 CNY"


def test_rounding_happens_once_at_the_end():
    # exact: advance 0.333, discount 0.1665, net 0.1665. Each figure is rounded from its exact
    # value (0.33, 0.17, 0.17): the net is not the rounded advance minus the rounded discount
    face = Money(100, "CNY")
    on = date(2026, 1, 1)
    terms = Terms(Decimal("0.333"), Decimal("0.5"), Money(0, "CNY"), DayCount.act_360)
    got = quote(face, on + timedelta(days=360), on, terms)
    assert (got.advance_amount.minor, got.discount.minor, got.net_proceeds.minor) == (33, 17, 17)
    assert got.effective_annual_rate == Decimal("1.00000000")


def test_no_days_left_or_nothing_paid_out_is_refused():
    face = Money.of("100.00", "CNY")
    on = date(2026, 1, 1)
    free = Money(0, "CNY")
    with pytest.raises(PricingError, match="due"):
        quote(face, on, on, Terms(Decimal("0.9"), Decimal("0.05"), free, DayCount.act_360))
    with pytest.raises(PricingError, match="consume"):
        quote(
            face,
            on + timedelta(days=30),
            on,
            Terms(Decimal("0.1"), Decimal("0.05"), Money.of("10.00", "CNY"), DayCount.act_360),
        )
    with pytest.raises(PricingError, match="currency"):
        quote(
            face,
            on + timedelta(days=30),
            on,
            Terms(Decimal("0.9"), Decimal("0.05"), Money(0, "JPY"), DayCount.act_360),
        )
