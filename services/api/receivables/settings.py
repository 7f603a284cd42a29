"""Settings of the receivable lifecycle, read from ``QILIAN_RECEIVABLES_*``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReceivableSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QILIAN_RECEIVABLES_", env_file=None, extra="ignore"
    )

    min_part_minor: int = Field(
        default=100, ge=1, description="smallest part of a split, in minor units of its currency"
    )
    max_depth: int = Field(
        default=8, ge=1, description="most splits and transfers between a root and a part"
    )
    max_parts: int = Field(default=100, ge=2, description="most parts in one split")
    overdue_grace_days: int = Field(
        default=0, ge=0, description="days after the due date before a receivable is overdue"
    )
    bulk_confirm_max: int = Field(default=500, ge=1)


@lru_cache
def get_receivable_settings() -> ReceivableSettings:
    return ReceivableSettings()
