"""Errors of identity and access that carry response headers (``WWW-Authenticate``,
``Retry-After``) and OAuth 2.0's ``error`` code beside the RFC 9457 fields."""

from __future__ import annotations

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from qilian.kit.errors import (
    InvalidInput,
    QilianError,
    TooManyRequests,
    Unauthorized,
    problem_response,
)


class HeaderError(QilianError):
    """A problem whose response needs headers."""

    headers: dict[str, str]


class NotAuthenticated(Unauthorized, HeaderError):
    """No credentials, or credentials that are not (or no longer) valid."""

    def __init__(
        self, detail: str = "valid credentials are required", *, error: str | None = None
    ) -> None:
        super().__init__(detail)
        challenge = 'Bearer realm="qilian"' + (f', error="{error}"' if error else "")
        self.headers = {"WWW-Authenticate": challenge}


class InvalidClient(Unauthorized, HeaderError):
    """OAuth 2.0 ``invalid_client``: unknown client, wrong secret, or a revoked client."""

    slug = "invalid-client"

    def __init__(self) -> None:
        super().__init__("client authentication failed", extra={"error": "invalid_client"})
        self.headers = {"WWW-Authenticate": 'Basic realm="qilian"', "Cache-Control": "no-store"}


class OAuthInvalidRequest(InvalidInput):
    """OAuth 2.0 ``invalid_request``/``unsupported_grant_type``/``invalid_scope`` (400)."""

    status, slug, title = 400, "oauth-invalid-request", "Invalid token request"

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail, extra={"error": error})


class RateLimited(TooManyRequests, HeaderError):
    def __init__(self, retry_after: int, bucket: str) -> None:
        super().__init__(f"rate limit of {bucket} reached; retry after {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


AUTH_REFUSALS = Counter(
    "qilian_auth_refusals_total",
    "Requests refused for credentials (401) or rate limits (429)",
    ["problem"],
)
log = structlog.get_logger(__name__)


async def header_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HeaderError)
    AUTH_REFUSALS.labels(exc.slug).inc()
    log.info("auth_refused", problem=exc.slug, detail=exc.detail, path=request.url.path)
    return problem_response(exc.to_problem(request.url.path), headers=exc.headers)
