"""Identity settings (``QILIAN_AUTH_*``): token lifetime, sessions, lock-out and rate limits.

Kept beside the shared :class:`qilian.kit.settings.Settings` (which holds ``secret_key``); defaults
are the production values, tests lower the limits on ``app.state.auth_settings``.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

ISSUER = "https://qilian.dev/api"
AUDIENCE = "qilian-api"


class AuthSettings(BaseSettings):
    """Tunable limits of identity and access."""

    model_config = SettingsConfigDict(env_prefix="QILIAN_AUTH_", env_file=None, extra="ignore")

    issuer: str = ISSUER
    audience: str = AUDIENCE
    access_token_seconds: int = 900
    clock_leeway_seconds: int = 10

    session_hours: int = 8
    session_cookie: str = "qilian_session"
    csrf_cookie: str = "qilian_csrf"
    csrf_header: str = "X-CSRF-Token"

    lockout_threshold: int = 5
    lockout_base_seconds: int = 60
    lockout_max_seconds: int = 3600

    rate_window_seconds: int = 60
    token_per_ip: int = 60
    token_per_client: int = 30
    login_per_ip: int = 30
    writes_per_principal: int = 300
    writes_per_ip: int = 600

    idempotency_hours: int = 24
    idempotency_lease_seconds: int = 300  # an unfinished first request is abandoned after


@lru_cache
def get_auth_settings() -> AuthSettings:
    return AuthSettings()
