"""``Idempotency-Key`` for every POST/PUT/PATCH/DELETE: one effect, one response.

An ASGI middleware, so no endpoint has to remember it. For a write carrying the header it
resolves the caller's principal (keys are scoped per principal) and claims
``(principal, key)`` in ``platform.idempotency_keys`` in its own transaction:

- a new key runs the request and stores its response (body encrypted at rest: it may hold a
  secret shown once) — except 429 and 5xx, after which the key is released for a retry;
- the same key and the same request again returns the stored response (``Idempotent-Replayed``);
- the same key with a different request is 422; the same key while the first still runs is 409
  (a first request that never finished — its process died — is abandoned after a lease, and the
  key is taken over by the next attempt).
Requests without valid credentials pass through (the endpoint answers 401).

The answer is stored *before* it is sent, so a client that has an answer can always have it
again. The one window left — the process dies after the request's transaction commits and
before the answer is stored — is closed by a mark written *inside* that transaction
(``committed_at``, by a ``before_commit`` listener on the sessions of the request): a key whose
request committed is never run again. Within the lease a retry hears "still being processed" (the
first may be storing its answer); after it, 409 ``idempotency-outcome-lost``: the effect stands,
read the resource instead.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, event, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlmodel import col
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qilian.kit import db
from qilian.kit.errors import Conflict, InvalidInput, QilianError, problem_response
from services.api.auth import keys
from services.api.auth.dependencies import auth_settings, platform_settings, resolve
from services.api.auth.models import IdempotencyRecord, Principal

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEPT_HEADERS = ("content-type", "location", "cache-control")

log = structlog.get_logger(__name__)

# the (principal, key) whose request runs in this context; its transactions mark the key
_running: ContextVar[tuple[str, str] | None] = ContextVar("idempotency_running", default=None)


class OutcomeLost(Conflict):
    slug, title = "idempotency-outcome-lost", "Outcome of the first request lost"


@event.listens_for(Session, "before_commit")
def _mark_committed(session: Session) -> None:
    """Inside the request's own transaction: the key's effect is about to be committed."""
    running = _running.get()
    if running is None:
        return
    principal, key = running
    session.execute(
        update(IdempotencyRecord)
        .where(col(IdempotencyRecord.principal) == principal, col(IdempotencyRecord.key) == key)
        .values(committed_at=datetime.now(UTC))
    )


def request_hash(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        key = Headers(scope=scope).get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if not 1 <= len(key) <= 255 or not key.isprintable():
            problem = InvalidInput("Idempotency-Key must be 1 to 255 printable characters")
            await problem_response(problem.to_problem(request.url.path))(scope, receive, send)
            return
        body = await request.body()
        replay_receive = _replaying(body, receive)
        principal = await self._principal(request)
        if principal is None:
            await self.app(scope, replay_receive, send)
            return
        fingerprint = request_hash(scope["method"], request.url.path, scope["query_string"], body)
        try:
            stored = await self._claim(request, principal.key(), key, fingerprint)
        except QilianError as problem:
            await problem_response(problem.to_problem(request.url.path))(scope, receive, send)
            return
        if stored is not None:
            await stored(scope, receive, send)
            return
        await self._run_and_store(scope, replay_receive, send, request, principal.key(), key)

    async def _principal(self, request: Request) -> Principal | None:
        try:
            async with db.transaction() as session:
                return await resolve(session, request, auth_settings(request))
        except QilianError:
            return None

    async def _claim(
        self, request: Request, principal: str, key: str, fingerprint: str
    ) -> Response | None:
        """None when this request now owns the key; else the stored response, or 409/422."""
        config = auth_settings(request)
        now = datetime.now(UTC)
        expired = now - timedelta(hours=config.idempotency_hours)
        abandoned = now - timedelta(seconds=config.idempotency_lease_seconds)
        async with db.transaction() as session:
            inserted = await session.execute(
                insert(IdempotencyRecord)
                .values(
                    principal=principal,
                    key=key,
                    request_hash=fingerprint,
                    method=request.method,
                    path=request.url.path,
                    created_at=now,
                )
                .on_conflict_do_nothing()
                .returning(col(IdempotencyRecord.key))
            )
            if inserted.scalar_one_or_none() is not None:
                return None
            record = (
                await session.execute(
                    select(IdempotencyRecord)
                    .where(
                        col(IdempotencyRecord.principal) == principal,
                        col(IdempotencyRecord.key) == key,
                    )
                    .with_for_update()
                )
            ).scalar_one_or_none()
            created = record.created_at if record is not None else None
            if (
                record is None
                or (created is not None and created < expired)
                or (
                    record.completed_at is None
                    and record.committed_at is None
                    and created is not None
                    and created < abandoned
                )
            ):
                # expired, released meanwhile, or its first request died: this one takes it over
                await session.execute(
                    delete(IdempotencyRecord).where(
                        col(IdempotencyRecord.principal) == principal,
                        col(IdempotencyRecord.key) == key,
                    )
                )
                await session.execute(
                    insert(IdempotencyRecord).values(
                        principal=principal,
                        key=key,
                        request_hash=fingerprint,
                        method=request.method,
                        path=request.url.path,
                        created_at=now,
                    )
                )
                return None
            if record.request_hash != fingerprint:
                raise InvalidInput(
                    "this Idempotency-Key was used with a different request",
                    extra={"idempotency_key": key},
                )
            if (
                record.completed_at is None
                and record.committed_at is not None
                and created is not None
                and created < abandoned
            ):
                raise OutcomeLost(
                    "the first request with this Idempotency-Key was carried out, but the service"
                    " stopped before its answer was stored; it is not run again: read the"
                    " resource to see its outcome",
                    extra={"idempotency_key": key},
                )
            if record.completed_at is None or record.response_body is None:
                raise Conflict(
                    "a request with this Idempotency-Key is still being processed; retry later",
                    extra={"idempotency_key": key},
                )
            secret = platform_settings(request).secret_key
            content = keys.unseal(
                secret, b"idempotency", record.response_body, _associated(principal, key)
            )
            headers: dict[str, Any] = dict(record.response_headers or {})
            headers[REPLAYED_HEADER] = "true"
            return Response(content, status_code=record.status_code or 200, headers=headers)

    async def _run_and_store(
        self, scope: Scope, receive: Receive, send: Send, request: Request, principal: str, key: str
    ) -> None:
        """Run the request with its answer held back; store the answer, then send it."""
        status = 500
        kept: dict[str, str] = {}
        held: list[Message] = []

        async def hold(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in Headers(raw=message.get("headers", [])).items():
                    if name.lower() in _KEPT_HEADERS:
                        kept[name.lower()] = value
            held.append(message)

        where = (col(IdempotencyRecord.principal) == principal, col(IdempotencyRecord.key) == key)
        running = _running.set((principal, key))
        try:
            await self.app(scope, receive, hold)
        except BaseException:
            _running.reset(running)
            async with db.transaction() as session:
                await session.execute(delete(IdempotencyRecord).where(*where))
            raise
        _running.reset(running)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        try:
            async with db.transaction() as session:
                if status == 429 or status >= 500:
                    await session.execute(delete(IdempotencyRecord).where(*where))
                else:
                    sealed = keys.seal(
                        platform_settings(request).secret_key,
                        b"idempotency",
                        body,
                        _associated(principal, key),
                    )
                    await session.execute(
                        update(IdempotencyRecord)
                        .where(*where)
                        .values(
                            status_code=status,
                            response_headers=kept,
                            response_body=sealed,
                            completed_at=datetime.now(UTC),
                        )
                    )
        except Exception as exc:  # the answer is the caller's still: its effect is committed
            log.warning("idempotency_answer_not_stored", key=key, error=repr(exc))
        for message in held:
            await send(message)


def _associated(principal: str, key: str) -> bytes:
    return f"{principal}\n{key}".encode()


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
