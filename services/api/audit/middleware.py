"""Refused writes go to the audit log too: an authenticated principal's POST/PUT/PATCH/DELETE
answered 403, 404, 409 or 422 is appended as ``request.refused`` (method, path, status) in its own
transaction, since the request's transaction rolled back. Successful changes are audited by the
services themselves, with their own action names; 401 and 429 are not audited (nobody is
attributable, or the caller is being throttled) but are logged."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qilian.kit import db
from services.api.audit import service as audit
from services.api.audit.models import Outcome
from services.api.auth.models import Principal

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_REFUSALS = frozenset({403, 404, 409, 422})


class RefusedWriteAuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, capture)
        principal = scope.get("state", {}).get("principal")
        if status in AUDITED_REFUSALS and isinstance(principal, Principal):
            async with db.transaction() as session:
                await audit.append(
                    session,
                    principal,
                    "request.refused",
                    outcome=Outcome.failure,
                    details={"method": scope["method"], "path": scope["path"], "status": status},
                )
