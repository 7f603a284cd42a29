"""Settings of the marketplace, read from ``QILIAN_FINANCING_*``."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FinancingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QILIAN_FINANCING_", env_file=None, extra="ignore")

    min_auction_seconds: int = Field(
        default=60, ge=1, description="shortest auction window (closes_at − now at creation)"
    )
    max_auction_days: int = Field(default=30, ge=1, description="longest auction window")
    min_days_after_close: int = Field(
        default=7,
        ge=1,
        description="the receivables must fall due at least this many days "
        "after the auction closes",
    )
    max_receivables: int = Field(default=50, ge=1, description="most receivables in one request")
    max_annual_rate: Decimal = Field(
        default=Decimal("0.36"), gt=0, lt=1, description="highest annual rate an offer may ask"
    )
    max_fee_share: Decimal = Field(
        default=Decimal("0.10"), gt=0, le=1, description="highest fee, as a share of face value"
    )
    funding_window_seconds: int = Field(
        default=2 * 24 * 3600,
        ge=1,
        description="after the registration on chain, the time the bank has to confirm the "
        "disbursement before the acceptance lapses",
    )
    default_grace_days: int = Field(
        default=30,
        ge=0,
        description="days after the due date before an unpaid financing is declared defaulted",
    )
    tick_limit: int = Field(default=200, ge=1, description="rows each timer handles per tick")


@lru_cache
def get_financing_settings() -> FinancingSettings:
    return FinancingSettings()
