"""One exception tree, rendered as RFC 9457 ``application/problem+json`` by one handler.

Raise ``NotFound``, ``Conflict``, ``Forbidden``, ``InvalidInput`` … from service code; the handler
installed by :func:`install_error_handlers` turns them (and FastAPI's validation errors) into
problem documents. Never a stack trace, never another organisation's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://qilian.dev/problems/"

log = structlog.get_logger(__name__)


class QilianError(Exception):
    """Base of every expected error; ``status`` and ``slug`` name the problem type."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors) if errors else None
        self.extra = extra or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class InvalidInput(QilianError):
    status, slug, title = 422, "invalid-input", "Invalid input"


class Unauthorized(QilianError):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(QilianError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(QilianError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(QilianError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(QilianError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(QilianError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(QilianError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(QilianError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        # drop the "body"/"query" prefix for the dotted field name, keep it as "in"
        where = loc[0] if loc else "body"
        field = ".".join(loc[1:]) if len(loc) > 1 else where
        errors.append({"field": field, "in": where, "message": err.get("msg", "invalid")})
    return errors


async def _qilian_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QilianError)
    if exc.status >= 500:
        log.error("request_failed", error=type(exc).__name__, detail=exc.detail)
    return problem_response(exc.to_problem(request.url.path))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    fields = ", ".join(e["field"] for e in errors)
    problem = InvalidInput(f"Invalid fields: {fields}", errors=errors)
    return problem_response(problem.to_problem(request.url.path))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": exc.detail if isinstance(exc.detail, str) else title,
        "instance": request.url.path,
    }
    return problem_response(body, headers=getattr(exc, "headers", None))


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # runs outside the request-id middleware (Starlette's outermost layer): carry the id ourselves
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled_error", error=type(exc).__name__, request_id=request_id)
    headers = {"X-Request-ID": request_id} if request_id else None
    return problem_response(QilianError().to_problem(request.url.path), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(QilianError, _qilian_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
    document_problems(app)


# the errors in the OpenAPI document ------------------------------------------------------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; validation errors add ``errors``, one per field",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status"],
}
# every operation may answer these (API.md: 401 without credentials, 403 for a role that may never
# do it, 404 for what the caller may not see, 422 naming the fields, 429 over a rate limit); a
# write also 409 (a conflict, or an Idempotency-Key still running), 413 and 415 (its body)
_EVERY_OPERATION = (401, 403, 404, 422, 429)
_EVERY_WRITE = (409, 413, 415)


def document_problems(app: FastAPI) -> None:
    """Name in ``/openapi.json`` the problem+json answers every operation may give."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                codes = _EVERY_OPERATION + (_EVERY_WRITE if method != "get" else ())
                responses = operation.setdefault("responses", {})
                for code in codes:
                    entry = responses.setdefault(
                        str(code), {"description": HTTPStatus(code).phrase}
                    )
                    entry["content"] = content
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
