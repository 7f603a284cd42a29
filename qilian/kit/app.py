"""The FastAPI application skeleton every HTTP service shares: logs, errors, metrics, health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from qilian.kit import db
from qilian.kit.errors import install_error_handlers
from qilian.kit.health import Check, health_router
from qilian.kit.logging import RequestIdMiddleware, configure_logging
from qilian.kit.metrics import install_metrics
from qilian.kit.settings import Settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    service: str,
    title: str,
    description: str,
    settings: Settings,
    checks: dict[str, Check],
    lifespan: Lifespan | None = None,
) -> FastAPI:
    configure_logging(service, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            await db.dispose_engine()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=_lifespan)
    install_error_handlers(app)
    install_metrics(app, service)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router(checks))
    return app
