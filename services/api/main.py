"""The public API service (``/v1``) and, later, the web pages. Default port 8000."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from qilian.kit.app import create_service_app
from qilian.kit.health import broker_check, chain_check, check_database
from qilian.kit.settings import Settings, get_settings
from services.api import auth, web
from services.api.financing import router as financing
from services.api.invoices.router import router as invoices_router
from services.api.receivables import lifecycle_router, signatures
from services.api.receivables.router import router as receivables_router
from services.api.risk import router as risk
from services.api.webhooks.router import router as webhooks_router


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    signatures.preload()  # the signing libraries load while the api already answers
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = create_service_app(
        service="api",
        title="Qilian SCF API",
        description=(
            "Supply-chain-finance receivables: invoices, confirmation (确权), vouchers, financing. "
            "Errors are RFC 9457 problem+json."
        ),
        settings=settings,
        checks={
            "database": check_database,
            "broker": broker_check(settings),
            "chain": chain_check(settings),
        },
        lifespan=_lifespan,
    )
    auth.install(app, settings)  # identity, directory, audit log, idempotency
    app.include_router(invoices_router)
    app.include_router(receivables_router)
    app.include_router(lifecycle_router.router)
    app.include_router(lifecycle_router.disputes_router)
    app.include_router(financing.requests_router)
    app.include_router(financing.offers_router)
    app.include_router(financing.financings_router)
    app.include_router(webhooks_router)
    app.include_router(risk.programmes_router)  # risk sharing, pool, claims
    app.include_router(risk.pool_router)
    app.include_router(risk.claims_router)
    app.include_router(risk.stats_router)  # the regulator's indicators and early warnings
    app.include_router(risk.alerts_router)
    web.install(app)  # the web pages (/web) and their static files
    return app


app = create_app()
