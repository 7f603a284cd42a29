"""All SQL of webhooks: endpoints scoped to their organisation, the one-statement fan-out of an
event to the matching endpoints, claiming due messages, recording attempts, and queue statistics."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.api.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

# a message id is made in SQL for the fan-out, "msg_" and a UUID4 in hex like qilian.kit.ids:
# 'msg_' || replace(gen_random_uuid()::text, '-', '')


def endpoints_of(organization_id: str) -> Select[Any]:
    return select(WebhookEndpoint).where(col(WebhookEndpoint.organization_id) == organization_id)


async def endpoint(
    session: AsyncSession, organization_id: str, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint | None:
    query = endpoints_of(organization_id).where(col(WebhookEndpoint.id) == endpoint_id)
    if lock:
        query = query.with_for_update()
    found: WebhookEndpoint | None = (await session.execute(query)).scalar_one_or_none()
    return found


async def count_endpoints(session: AsyncSession, organization_id: str) -> int:
    """The organisation's endpoints, counted under a transaction-scoped lock of its own, so
    that concurrent registrations cannot together pass the limit."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('webhook-endpoints:' || :org, 0))"),
        {"org": organization_id},
    )
    result = await session.execute(
        text("SELECT count(*) FROM platform.webhook_endpoints WHERE organization_id = :org"),
        {"org": organization_id},
    )
    return int(result.scalar_one())


def messages_of(endpoint_id: str, state: str | None) -> Select[Any]:
    query = select(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint_id)
    if state is not None:
        query = query.where(col(WebhookMessage.state) == state)
    return query


async def message(
    session: AsyncSession, organization_id: str, message_id: str, *, lock: bool = False
) -> WebhookMessage | None:
    query = select(WebhookMessage).where(
        col(WebhookMessage.id) == message_id,
        col(WebhookMessage.organization_id) == organization_id,
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def attempts_of(
    session: AsyncSession, message_ids: Sequence[str]
) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = {m: [] for m in message_ids}
    if not message_ids:
        return found
    rows = await session.execute(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.message_id).in_(list(message_ids)))
        .order_by(col(WebhookAttempt.message_id), col(WebhookAttempt.attempt))
    )
    for row in rows.scalars():
        found[row.message_id].append(row)
    return found


async def fan_out(
    session: AsyncSession,
    organization_ids: list[str],
    filters: list[str],
    event_id: str,
    event_type: str,
    payload: str,
) -> int:
    """One message per enabled endpoint of the organisations whose filters overlap ``filters``;
    an (endpoint, event) already there is skipped. One statement, on the organisation index."""
    result = await session.execute(
        text(
            """
            INSERT INTO platform.webhook_messages
                   (id, endpoint_id, organization_id, event_id, event_type, payload)
            SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
                   e.id, e.organization_id, :event_id, :event_type, :payload
              FROM platform.webhook_endpoints e
             WHERE e.organization_id = ANY(:orgs)
               AND e.enabled
               AND e.event_types && CAST(:filters AS varchar[])
            ON CONFLICT ON CONSTRAINT uq_webhook_messages_endpoint_event DO NOTHING
            RETURNING id
            """
        ),
        {
            "orgs": organization_ids,
            "filters": filters,
            "event_id": event_id,
            "event_type": event_type,
            "payload": payload,
        },
    )
    return len(result.all())


async def fan_out_each(
    session: AsyncSession,
    items: list[tuple[str, str, str]],
    filters: list[str],
    event_type: str,
) -> int:
    """:func:`fan_out` for many events of one type, each to one organisation (``items`` are
    ``(organization_id, event_id, payload)``): one statement whatever their number."""
    if not items:
        return 0
    orgs, event_ids, payloads = (list(column) for column in zip(*items, strict=True))
    result = await session.execute(
        text(
            """
            INSERT INTO platform.webhook_messages
                   (id, endpoint_id, organization_id, event_id, event_type, payload)
            SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
                   e.id, e.organization_id, i.event_id, :event_type, i.payload
              FROM unnest(CAST(:orgs AS varchar[]), CAST(:event_ids AS varchar[]),
                          CAST(:payloads AS text[])) AS i(organization_id, event_id, payload)
              JOIN platform.webhook_endpoints e ON e.organization_id = i.organization_id
             WHERE e.enabled
               AND e.event_types && CAST(:filters AS varchar[])
            ON CONFLICT ON CONSTRAINT uq_webhook_messages_endpoint_event DO NOTHING
            RETURNING id
            """
        ),
        {
            "orgs": orgs,
            "event_ids": event_ids,
            "payloads": payloads,
            "filters": filters,
            "event_type": event_type,
        },
    )
    return len(result.all())


async def add_message(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    event_id: str,
    event_type: str,
    payload: str,
) -> str:
    """One message for one endpoint (a test message), whatever its filter."""
    result = await session.execute(
        text(
            """
            INSERT INTO platform.webhook_messages
                   (id, endpoint_id, organization_id, event_id, event_type, payload)
            VALUES ('msg_' || replace(gen_random_uuid()::text, '-', ''),
                    :endpoint_id, :org, :event_id, :event_type, :payload)
            RETURNING id
            """
        ),
        {
            "endpoint_id": endpoint.id,
            "org": endpoint.organization_id,
            "event_id": event_id,
            "event_type": event_type,
            "payload": payload,
        },
    )
    return str(result.scalar_one())


@dataclass(frozen=True)
class Claimed:
    """A message leased to one dispatcher for one attempt."""

    message_id: str
    lease_id: str
    attempt: int
    round_attempts: int
    payload: str
    endpoint_id: str
    url: str
    secret_sealed: bytes
    previous_secret_sealed: bytes | None
    previous_secret_expires_at: datetime | None


async def bury_abandoned(session: AsyncSession, now: datetime, max_attempts: int) -> int:
    """Dead-letter messages whose last attempt's lease ran out with no outcome recorded."""
    result = await session.execute(
        text(
            """
            UPDATE platform.webhook_messages
               SET state = 'dead', dead_at = :now, lease_id = NULL,
                   last_error = coalesce(last_error, 'no outcome recorded for the last attempt')
             WHERE state = 'pending' AND round_attempts >= :max AND next_attempt_at <= :now
            """
        ),
        {"now": now, "max": max_attempts},
    )
    return int(getattr(result, "rowcount", 0))


async def claim(
    session: AsyncSession, now: datetime, limit: int, lease: timedelta
) -> list[Claimed]:
    """Lease due messages of enabled endpoints (skipping those another dispatcher holds): each
    is not due again until the lease ends, and its attempt number is taken now."""
    lease_id = secrets.token_hex(16)
    rows = await session.execute(
        text(
            """
            WITH due AS (
                SELECT m.id
                  FROM platform.webhook_messages m
                  JOIN platform.webhook_endpoints e ON e.id = m.endpoint_id
                 WHERE m.state = 'pending' AND m.next_attempt_at <= :now AND e.enabled
                 ORDER BY m.next_attempt_at
                 LIMIT :limit
                   FOR UPDATE OF m SKIP LOCKED
            )
            UPDATE platform.webhook_messages m
               SET attempts = m.attempts + 1,
                   round_attempts = m.round_attempts + 1,
                   next_attempt_at = :now + :lease * interval '1 second',
                   lease_id = :lease_id
              FROM due, platform.webhook_endpoints e
             WHERE m.id = due.id AND e.id = m.endpoint_id
            RETURNING m.id, m.attempts, m.round_attempts, m.payload, e.id AS endpoint_id, e.url,
                      e.secret_sealed, e.previous_secret_sealed, e.previous_secret_expires_at
            """
        ),
        {
            "now": now,
            "limit": limit,
            "lease": lease.total_seconds(),
            "lease_id": lease_id,
        },
    )
    return [
        Claimed(
            message_id=row.id,
            lease_id=lease_id,
            attempt=row.attempts,
            round_attempts=row.round_attempts,
            payload=row.payload,
            endpoint_id=row.endpoint_id,
            url=row.url,
            secret_sealed=bytes(row.secret_sealed),
            previous_secret_sealed=(
                bytes(row.previous_secret_sealed) if row.previous_secret_sealed else None
            ),
            previous_secret_expires_at=row.previous_secret_expires_at,
        )
        for row in rows
    ]


async def record_attempt(
    session: AsyncSession,
    claimed: Claimed,
    attempt: WebhookAttempt,
    *,
    state: str,
    next_attempt_at: datetime | None,
    now: datetime,
) -> bool:
    """The attempt's row and the message's new state, if the claim still holds (a dispatcher
    whose lease ran out and was taken over records nothing); False then."""
    result = await session.execute(
        text(
            """
            UPDATE platform.webhook_messages
               SET state = :state,
                   next_attempt_at = coalesce(:next, next_attempt_at),
                   lease_id = NULL,
                   last_error = :error,
                   delivered_at = :delivered_at,
                   dead_at = :dead_at
             WHERE id = :id AND lease_id = :lease_id
            RETURNING id
            """
        ),
        {
            "state": state,
            "next": next_attempt_at,
            "error": attempt.error,
            "delivered_at": now if state == "delivered" else None,
            "dead_at": now if state == "dead" else None,
            "id": claimed.message_id,
            "lease_id": claimed.lease_id,
        },
    )
    if result.first() is None:
        return False
    session.add(attempt)
    await session.flush()
    return True


async def requeue(session: AsyncSession, message: WebhookMessage, now: datetime) -> None:
    """A delivered or dead message becomes due now, with a fresh round of attempts."""
    message.state = "pending"
    message.round_attempts = 0
    message.next_attempt_at = now
    message.lease_id = None
    message.dead_at = None
    await session.flush()


@dataclass(frozen=True)
class QueueStats:
    pending: int
    dead: int
    oldest_pending_age: float


async def stats(session: AsyncSession) -> QueueStats:
    row = (
        await session.execute(
            text(
                """
                SELECT (SELECT count(*) FROM platform.webhook_messages
                         WHERE state = 'pending') AS pending,
                       (SELECT count(*) FROM platform.webhook_messages
                         WHERE state = 'dead') AS dead,
                       (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
                          FROM platform.webhook_messages WHERE state = 'pending') AS age
                """
            )
        )
    ).one()
    return QueueStats(int(row.pending), int(row.dead), float(row.age))


async def prune(session: AsyncSession, before: datetime) -> int:
    """Delete messages delivered before ``before`` (their attempts go with them)."""
    result = await session.execute(
        text(
            "DELETE FROM platform.webhook_messages WHERE state = 'delivered' "
            "AND delivered_at < :before"
        ),
        {"before": before},
    )
    return int(getattr(result, "rowcount", 0))
