"""Exact money: ``Decimal`` in Python and the API, integer minor units in the database.

Rounding to a currency's minor unit happens here and nowhere else (half-even, as API.md says).
Floats are refused everywhere.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    field_validator,
    model_validator,
)

# ISO 4217 minor-unit exponents of the currencies the platform accepts.
MINOR_UNITS: dict[str, int] = {
    "CNY": 2,
    "USD": 2,
    "EUR": 2,
    "HKD": 2,
    "GBP": 2,
    "CHF": 2,
    "SGD": 2,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "BHD": 3,
}


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def minor_exponent(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise MoneyError(f"unsupported currency {currency!r}") from None


def to_decimal(value: Any) -> Decimal:
    """A Decimal from a string, int or Decimal; floats and non-finite values are refused."""
    if isinstance(value, bool | float):
        raise MoneyError("amounts must be decimal strings, not floats")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise MoneyError(f"not a decimal amount: {value!r}") from None
    else:
        raise MoneyError(f"not a decimal amount: {value!r}")
    if not result.is_finite():
        raise MoneyError("amounts must be finite")
    return result


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor unit (the one place where money is rounded)."""
    exponent = minor_exponent(currency)
    return amount.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency, stored as integer minor units."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise MoneyError("minor units must be an integer")
        minor_exponent(self.currency)

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        """Exact conversion: an amount with more decimals than the currency allows is refused."""
        value = to_decimal(amount)
        exponent = minor_exponent(currency)
        scaled = value.scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise MoneyError(f"{value} has more than {exponent} decimals for {currency}")
        return cls(int(scaled), currency)

    @classmethod
    def rounded(cls, amount: Decimal, currency: str) -> Money:
        """Conversion that rounds half-even (for computed amounts such as discounts)."""
        return cls.of(quantize(amount, currency), currency)

    @property
    def amount(self) -> Decimal:
        return Decimal(self.minor).scaleb(-minor_exponent(self.currency))

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def is_positive(self) -> bool:
        return self.minor > 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    def to_json(self) -> dict[str, str]:
        return {"amount": str(self.amount), "currency": self.currency}


class MoneyModel(BaseModel):
    """The API shape: ``{"amount": "1250.50", "currency": "CNY"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    currency: str

    @field_validator("amount", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Decimal:
        try:
            return to_decimal(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in MINOR_UNITS:
            raise ValueError(f"unsupported currency {value!r}")
        return value

    @model_validator(mode="after")
    def _exact_in_its_currency(self) -> Self:
        Money.of(self.amount, self.currency)  # more decimals than the currency's minor unit
        return self

    def to_money(self) -> Money:
        return Money.of(self.amount, self.currency)

    @classmethod
    def from_money(cls, money: Money) -> MoneyModel:
        return cls(amount=money.amount, currency=money.currency)


def _printable(value: str) -> str:
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("a reference has no control characters")
    return value


# A payment's reference (a bank transfer's): trimmed, 1–200 characters, no control characters.
PaymentReference = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
]
