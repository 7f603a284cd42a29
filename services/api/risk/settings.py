"""Settings of risk sharing and early warnings, read from ``QILIAN_RISK_*``.

The early-warning rules are configured here (each threshold, window and policy); a rule whose
``*_enabled`` is false is not evaluated. Tests put their own instance where the code takes one.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RiskSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QILIAN_RISK_", env_file=None, extra="ignore")

    # overdue ratio of a cluster: overdue open amount / confirmed outstanding
    overdue_ratio_enabled: bool = True
    overdue_ratio_threshold: Decimal = Field(default=Decimal("0.10"), gt=0, le=1)
    overdue_ratio_min_outstanding_minor: int = Field(
        default=100_000, ge=0, description="clusters with less confirmed outstanding are skipped"
    )
    # a core firm's confirmed payables: amount confirmed in the last window vs the window before
    payables_growth_enabled: bool = True
    payables_growth_threshold: Decimal = Field(
        default=Decimal("1.0"), gt=0, description="growth above this (1.0 = doubled) warns"
    )
    payables_growth_window_days: float = Field(default=30, gt=0)
    payables_growth_min_minor: int = Field(
        default=100_000, ge=0, description="the recent window must confirm at least this much"
    )
    # payment terms: confirmed receivables due more than this many days after issue
    payment_terms_enabled: bool = True
    payment_terms_policy_days: int = Field(
        default=60,
        ge=1,
        description="large firms pay SMEs within 60 days (保障中小企业款项支付条例)",
    )
    payment_terms_window_days: int = Field(default=30, ge=1)
    # duplicate-financing attempts by one organisation (409 uploads, duplicate import rows)
    duplicates_enabled: bool = True
    duplicates_threshold: int = Field(default=3, ge=1, description="attempts in the window")
    duplicates_window_days: int = Field(default=30, ge=1)
    # the pool's balance against its exposure on live covered financings
    pool_cover_enabled: bool = True
    pool_cover_ratio: Decimal = Field(
        default=Decimal("0.20"),
        gt=0,
        description="the pool should hold at least this share of its exposure "
        "(pool share × covered amount of live covers)",
    )
    tick_limit: int = Field(default=500, ge=1, description="queued claims paid per tick")


@lru_cache
def get_risk_settings() -> RiskSettings:
    return RiskSettings()
