"""Loss allocation against an independent computation: exact rationals (``Fraction``) and the
largest-remainder rule written again here, for several programmes and default patterns; the
share validation naming the field; the guarantee fee's single half-even rounding."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qilian.kit.errors import InvalidInput
from services.api.risk.models import Party
from services.api.risk.service import LossShare, allocate, check_shares, guarantee_fee


def independent(loss: int, shares: list[str]) -> list[int]:
    """Largest remainder with Fractions only: floors, then one unit each to the largest
    fractional parts (ties: the earlier share)."""
    exact = [Fraction(loss) * Fraction(s) for s in shares]
    floors = [e.numerator // e.denominator for e in exact]
    left = loss - sum(floors)
    ranked = sorted(range(len(shares)), key=lambda i: (floors[i] - exact[i], i))
    for i in ranked[:left]:
        floors[i] += 1
    return floors


PROGRAMMES = {
    # 政银担 4:2:2:2 — guarantor 40 %, bank 20 %, pool 20 %, another guarantor 20 %
    "4-2-2-2": ["0.4", "0.2", "0.2", "0.2"],
    # thirds cannot be written as finite decimals: 0.3333333333 × 2 + 0.3333333334
    "thirds": ["0.3333333333", "0.3333333333", "0.3333333334"],
    # a pool-heavy programme with odd shares
    "pool-heavy": ["0.125", "0.0625", "0.8125"],
    "seven-ways": ["0.1", "0.15", "0.15", "0.2", "0.05", "0.3", "0.05"],
}
LOSSES = [1, 2, 3, 7, 99, 100, 101, 12_345, 1_000_001, 999_999_999_999]


@pytest.mark.parametrize("name", sorted(PROGRAMMES))
@pytest.mark.parametrize("loss", LOSSES)
def test_parts_match_the_independent_largest_remainder_and_sum_to_the_loss(name, loss):
    shares = PROGRAMMES[name]
    parts = allocate(loss, [Decimal(s) for s in shares])
    assert parts == independent(loss, shares)
    assert sum(parts) == loss
    for part, share in zip(parts, shares, strict=True):
        assert abs(Fraction(part) - Fraction(loss) * Fraction(share)) < 1


def test_a_hand_worked_example():
    # 100.01 CNY lost (10 001 fen) at 40/20/20/20: exact 4000.4, 2000.2 ×3 → floors 4000, 2000 ×3
    # = 10 000; one fen left goes to the largest fractional part, the guarantor's 0.4
    assert allocate(10_001, [Decimal("0.4"), Decimal("0.2"), Decimal("0.2"), Decimal("0.2")]) == [
        4001,
        2000,
        2000,
        2000,
    ]
    # ties go to the earlier share: 1 fen in three equal-ish thirds
    assert allocate(
        1, [Decimal("0.3333333333"), Decimal("0.3333333333"), Decimal("0.3333333334")]
    ) == [
        0,
        0,
        1,
    ]
    assert allocate(2, [Decimal("0.5"), Decimal("0.5")]) == [1, 1]
    assert allocate(1, [Decimal("0.5"), Decimal("0.5")]) == [1, 0]


shares_strategy = st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(weights=shares_strategy, loss=st.integers(min_value=0, max_value=10**15))
def test_any_exact_shares_split_any_loss_exactly(weights, loss):
    total = sum(weights)
    # shares with at most 10 decimals that sum to exactly 1: scale, put the rest on the last
    units = [w * 10**10 // total for w in weights]
    units[-1] += 10**10 - sum(units)
    if any(u <= 0 for u in units):
        return
    shares = [str(Decimal(u).scaleb(-10)) for u in units]
    parts = allocate(loss, [Decimal(s) for s in shares])
    assert parts == independent(loss, shares)
    assert sum(parts) == loss


def test_shares_not_summing_to_one_are_refused_naming_the_field():
    with pytest.raises(InvalidInput) as refused:
        check_shares(
            [LossShare(Party.guarantor, Decimal("0.5")), LossShare(Party.pool, Decimal("0.4"))]
        )
    assert (refused.value.errors or [{}])[0]["field"] == "loss_shares"
    assert "0.9" in (refused.value.errors or [{}])[0]["message"]
    with pytest.raises(InvalidInput) as twice:
        check_shares(
            [LossShare(Party.guarantor, Decimal("0.5")), LossShare(Party.guarantor, Decimal("0.5"))]
        )
    assert (twice.value.errors or [{}])[0]["field"] == "loss_shares[1].party"
    with pytest.raises(InvalidInput) as nameless:
        check_shares([LossShare(Party.other, Decimal("1"))])
    assert (nameless.value.errors or [{}])[0]["field"] == "loss_shares[0].organization_id"
    with pytest.raises(InvalidInput) as fine:
        check_shares(
            [
                LossShare(Party.pool, Decimal("0.00000000001")),
                LossShare(Party.bank, Decimal("0.99999999999")),
            ]
        )
    assert (fine.value.errors or [{}])[0]["field"] == "loss_shares[0].share"
    check_shares(
        [LossShare(Party.guarantor, Decimal("0.7")), LossShare(Party.bank, Decimal("0.3"))]
    )
    # trailing zeros are not decimals: 0.500000000000 is 0.5
    check_shares(
        [
            LossShare(Party.guarantor, Decimal("0.500000000000")),
            LossShare(Party.pool, Decimal("0.5")),
        ]
    )


def test_allocation_refuses_shares_that_do_not_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        allocate(100, [Decimal("0.5"), Decimal("0.4")])


def half_even(value: Fraction) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return floor


@settings(max_examples=300, deadline=None)
@given(
    covered=st.integers(min_value=1, max_value=10**13),
    rate_units=st.integers(min_value=0, max_value=99_999_999),
    days=st.integers(min_value=1, max_value=720),
    currency=st.sampled_from(["CNY", "JPY", "KWD"]),
)
def test_the_guarantee_fee_is_rounded_once_half_even(covered, rate_units, days, currency):
    rate = Decimal(rate_units) / Decimal(10**8)
    expected = half_even(Fraction(covered) * Fraction(rate) * days / 365)
    assert guarantee_fee(covered, rate, days, currency) == expected


def test_a_fee_tie_rounds_to_even():
    # 73 000 fen × 1 % × 365/365 = 730 fen exactly; 50 fen × 1 % × 365 / 365 = 0.5 fen → 0
    assert guarantee_fee(73_000, Decimal("0.01"), 365, "CNY") == 730
    assert guarantee_fee(50, Decimal("0.01"), 365, "CNY") == 0
    assert guarantee_fee(150, Decimal("0.01"), 365, "CNY") == 2
