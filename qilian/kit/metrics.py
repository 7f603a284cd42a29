"""Prometheus metrics shared by every service: HTTP latency, outbox lag and depth, task outcomes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

HTTP_LATENCY = Histogram(
    "qilian_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
)
OUTBOX_PENDING = Gauge("qilian_outbox_pending", "Outbox events not yet delivered")
OUTBOX_LAG = Gauge("qilian_outbox_lag_seconds", "Age of the oldest undelivered outbox event")
OUTBOX_DEAD = Gauge("qilian_outbox_dead", "Outbox events in the dead-letter state")
OUTBOX_PUBLISHED = Counter("qilian_outbox_published_total", "Outbox events published", ["topic"])
TASKS = Counter("qilian_task_total", "Background task outcomes", ["task", "outcome"])


class MetricsMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: object, service: str) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.service = service

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        HTTP_LATENCY.labels(
            self.service, request.method, template, str(response.status_code)
        ).observe(time.perf_counter() - start)
        return response


async def refresh_outbox_gauges() -> None:
    """Read the outbox's depth, lag and dead letters at scrape time (any replica can answer)."""
    from qilian.kit import db, outbox

    async with db.transaction() as session:
        stats = await outbox.stats(session)
    OUTBOX_PENDING.set(stats.pending)
    OUTBOX_DEAD.set(stats.dead)
    OUTBOX_LAG.set(stats.oldest_pending_age)


def install_metrics(app: FastAPI, service: str) -> None:
    app.add_middleware(MetricsMiddleware, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # a scrape must answer even while the database is down
        with contextlib.suppress(Exception):
            await refresh_outbox_gauges()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
