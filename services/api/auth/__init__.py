"""Identity and access: who is calling (principals from bearer tokens and session cookies),
what their role may do, signing keys, client credentials, people, idempotency and rate limits.

Every ``/v1`` endpoint depends on :func:`services.api.auth.dependencies.get_principal` (or a rule
built on it); :func:`install` wires the pieces that must wrap the whole application.
"""

from __future__ import annotations

from fastapi import FastAPI

from qilian.kit.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Routers of identity, the organisation directory and the audit log; idempotency and the
    audit of refused writes; the handler for problems that carry headers (401
    ``WWW-Authenticate``, 429 ``Retry-After``)."""
    from services.api.audit.middleware import RefusedWriteAuditMiddleware
    from services.api.audit.router import router as audit_router
    from services.api.auth.errors import HeaderError, header_error_handler
    from services.api.auth.idempotency import IdempotencyMiddleware
    from services.api.auth.router import router as auth_router
    from services.api.auth.settings import get_auth_settings
    from services.api.organizations.router import router as organizations_router

    app.state.qilian_settings = settings
    app.state.auth_settings = get_auth_settings()
    app.add_exception_handler(HeaderError, header_error_handler)
    app.add_middleware(RefusedWriteAuditMiddleware)
    app.add_middleware(IdempotencyMiddleware)  # outermost: a replay is not audited twice
    app.include_router(auth_router)
    app.include_router(organizations_router)
    app.include_router(audit_router)
