"""Settings of webhook delivery, read from ``QILIAN_WEBHOOKS_*``.

Defaults are the production values except where marked; tests shorten the retry schedule and put
their own instance on ``app.state.webhook_settings`` or pass it to the dispatcher.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QILIAN_WEBHOOKS_", env_file=None, extra="ignore")

    retry_schedule: list[float] = Field(
        default=[5.0, 30.0, 120.0, 600.0, 3600.0, 10800.0, 21600.0],
        min_length=0,
        description="seconds before each retry after a failed attempt; dead once it runs out",
    )
    jitter: float = Field(default=0.2, ge=0.0, lt=1.0, description="± share of each delay")
    timeout_seconds: float = Field(default=10.0, gt=0, description="a whole attempt, at most")
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: float = Field(
        default=60.0, gt=0, description="a claimed message is not claimed again for this long"
    )
    batch_size: int = Field(default=100, ge=1, description="messages claimed per pass")
    concurrency: int = Field(default=10, ge=1, description="attempts in flight per pass")
    max_response_bytes: int = Field(default=4096, ge=0, description="read of a receiver's answer")
    max_endpoints_per_organization: int = Field(default=20, ge=1)
    secret_grace_seconds: float = Field(
        default=86400.0, ge=0, description="after a rotation the old secret also signs this long"
    )
    retention_days: float = Field(default=30.0, gt=0, description="delivered messages kept")
    # None: decided by QILIAN_ENV (allowed in development and test, refused in production)
    allow_http: bool | None = Field(default=None, description="plain http to non-loopback hosts")
    allow_private_networks: bool | None = Field(
        default=None, description="private, link-local and other non-public addresses"
    )
    allow_loopback: bool = Field(default=True, description="127.0.0.0/8 and ::1 as targets")

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> Self:
        if self.lease_seconds <= self.timeout_seconds + self.connect_timeout_seconds:
            raise ValueError("lease_seconds must exceed timeout_seconds + connect_timeout_seconds")
        return self

    @property
    def max_attempts(self) -> int:
        """Attempts per round (the first and one per retry of the schedule)."""
        return len(self.retry_schedule) + 1

    def http_allowed(self, env: str) -> bool:
        return self.allow_http if self.allow_http is not None else env != "production"

    def private_allowed(self, env: str) -> bool:
        if self.allow_private_networks is not None:
            return self.allow_private_networks
        return env != "production"


@lru_cache
def get_webhook_settings() -> WebhookSettings:
    return WebhookSettings()
