"""The money arithmetic of an offer, exactly as API.md ("Money arithmetic for offers") states it.

For a financing of face value ``F`` due at ``D``, accepted (or quoted) on ``t``, ``days = D − t``::

    advance_amount        = F × advance_rate
    discount              = advance_amount × annual_rate × days / basis      (basis 360 or 365)
    net_proceeds          = advance_amount − discount − fee
    effective_annual_rate = (F × advance_rate − net_proceeds) / net_proceeds × basis / days

Everything is computed in :class:`~decimal.Decimal` at a precision far beyond any amount and
rounded half-even only at the end: amounts to the currency's minor unit, the effective rate to
:data:`RATE_PLACES` decimal places. Ranking uses the rounded figures a requester sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from typing import Final

from qilian.kit.money import Money, quantize

RATE_PLACES: Final = 8
_RATE_QUANTUM: Final = Decimal(1).scaleb(-RATE_PLACES)
_PRECISION: Final = 60


class DayCount(StrEnum):
    act_360 = "ACT/360"
    act_365 = "ACT/365"

    @property
    def basis(self) -> int:
        return 360 if self is DayCount.act_360 else 365


class PricingError(ValueError):
    """Terms that give no sensible quote (no days left, nothing paid out)."""


@dataclass(frozen=True)
class Terms:
    advance_rate: Decimal
    annual_rate: Decimal
    fee: Money
    day_count: DayCount


@dataclass(frozen=True)
class Quote:
    days: int
    advance_amount: Money
    discount: Money
    net_proceeds: Money
    effective_annual_rate: Decimal

    def to_json(self) -> dict[str, object]:
        return {
            "days": self.days,
            "advance_amount": self.advance_amount.to_json(),
            "discount": self.discount.to_json(),
            "net_proceeds": self.net_proceeds.to_json(),
            "effective_annual_rate": str(self.effective_annual_rate),
        }


def quote(face_value: Money, due_date: date, on: date, terms: Terms) -> Quote:
    """The offer's figures for a financing of ``face_value`` due on ``due_date``, as of ``on``."""
    if terms.fee.currency != face_value.currency:
        raise PricingError("the fee must be in the currency of the receivables")
    days = (due_date - on).days
    if days <= 0:
        raise PricingError("the receivables are due: no days left to finance")
    basis = terms.day_count.basis
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        face = face_value.amount
        advance = face * terms.advance_rate
        discount = advance * terms.annual_rate * days / basis
        net = advance - discount - terms.fee.amount
        if net <= 0:
            raise PricingError("the discount and fee consume the whole advance")
        effective = (face * terms.advance_rate - net) / net * basis / days
        currency = face_value.currency
        return Quote(
            days=days,
            advance_amount=Money.of(quantize(advance, currency), currency),
            discount=Money.of(quantize(discount, currency), currency),
            net_proceeds=Money.of(quantize(net, currency), currency),
            effective_annual_rate=effective.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_EVEN),
        )
