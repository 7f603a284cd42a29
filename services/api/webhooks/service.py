"""Business rules of webhooks: publishing an event to the organisations a caller names, and each
organisation's endpoints (create, change, delete, rotate the secret, send a test, replay).

:func:`publish` is what other domains call, inside their own transaction: the messages commit
with the business change or not at all. The caller decides the audience; an organisation not
named never gets a message, whatever its endpoints subscribe to. Secrets are ``whsec_`` and
base64 of 32 random bytes (the Standard Webhooks format), sealed at rest with the mechanism of
the token-signing keys (``services.api.auth.keys.seal``).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import ids
from qilian.kit.errors import Conflict, InvalidInput, NotFound
from services.api.audit import service as audit
from services.api.auth import keys
from services.api.auth.models import Principal
from services.api.webhooks import events, repository
from services.api.webhooks.models import MessageState, WebhookEndpoint, WebhookMessage
from services.api.webhooks.settings import WebhookSettings
from services.api.webhooks.targets import TargetRefused, check_url

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_SEAL_PURPOSE = b"webhook-secret"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


def body(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The message body, as signed and sent: ``{"type", "timestamp", "data"}``."""
    document = {
        "type": event_type,
        "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=_json_default)


async def publish(
    session: AsyncSession,
    organization_ids: Iterable[str],
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
) -> int:
    """Queue ``event_type`` for every enabled endpoint of each listed organisation whose filter
    selects it (exact type, its family ``offer.*``, or ``*``); returns how many messages.

    In the caller's transaction. Only the listed organisations: the caller chooses the audience.
    Publishing the same ``event_id`` again adds nothing for endpoints that have it already.
    """
    if event_type not in events.EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    audience = sorted(set(organization_ids))
    if not audience:
        return 0
    payload = body(event_type, data, utcnow())
    return await repository.fan_out(
        session,
        audience,
        events.filters_matching(event_type),
        event_id or ids.new_id("evt"),
        event_type,
        payload,
    )


async def publish_each(
    session: AsyncSession, event_type: str, items: Iterable[tuple[str, dict[str, Any]]]
) -> int:
    """Many events of one type, each for one organisation only (``(organization_id, data)``,
    e.g. each losing bank its own ``offer.lost``), in one statement; returns how many messages."""
    if event_type not in events.EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    at = utcnow()
    rows = [(org, ids.new_id("evt"), body(event_type, data, at)) for org, data in items]
    return await repository.fan_out_each(
        session, rows, events.filters_matching(event_type), event_type
    )


# --- secrets -------------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def seal_secret(secret_key: str, endpoint_id: str, secret: str) -> bytes:
    return keys.seal(secret_key, _SEAL_PURPOSE, secret.encode(), endpoint_id.encode())


def unseal_secret(secret_key: str, endpoint_id: str, sealed: bytes) -> str:
    return keys.unseal(secret_key, _SEAL_PURPOSE, sealed, endpoint_id.encode()).decode()


# --- endpoints -----------------------------------------------------------------------------


def _field(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}", errors=[{"field": field, "in": "body", "message": message}]
    )


def checked_url(url: str, settings: WebhookSettings, env: str) -> str:
    try:
        return check_url(url, settings, env)
    except TargetRefused as exc:
        raise _field("url", str(exc)) from None


def checked_event_types(values: list[str]) -> list[str]:
    unknown = [v for v in values if not events.is_known_filter(v)]
    if unknown:
        errors = [
            {
                "field": f"event_types.{values.index(v)}",
                "in": "body",
                "message": f"unknown event type {v!r} (see GET /v1/webhook-event-types)",
            }
            for v in unknown
        ]
        raise InvalidInput(f"event_types: unknown {', '.join(unknown)}", errors=errors)
    return sorted(set(values))


@dataclass(frozen=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str


async def create_endpoint(
    session: AsyncSession,
    principal: Principal,
    *,
    url: str,
    event_types: list[str],
    description: str | None,
    settings: WebhookSettings,
    env: str,
    secret_key: str,
) -> Created:
    url = checked_url(url, settings, env)
    types = checked_event_types(event_types)
    if await repository.count_endpoints(session, principal.organization_id) >= (
        settings.max_endpoints_per_organization
    ):
        raise Conflict(
            f"an organisation has at most {settings.max_endpoints_per_organization} endpoints"
        )
    endpoint_id = ids.new_id("whk")
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        organization_id=principal.organization_id,
        url=url,
        description=description,
        event_types=types,
        secret_sealed=seal_secret(secret_key, endpoint_id, secret),
    )
    session.add(endpoint)
    await session.flush()
    await audit.append(
        session,
        principal,
        "webhook_endpoint.created",
        object_type="webhook_endpoint",
        object_id=endpoint_id,
        details={"url": url, "event_types": types},
    )
    await session.refresh(endpoint)
    return Created(endpoint, secret)


async def get_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: str, *, lock: bool = False
) -> WebhookEndpoint:
    """The caller's own endpoint; another organisation's is 404 like a missing one."""
    endpoint = await repository.endpoint(session, principal.organization_id, endpoint_id, lock=lock)
    if endpoint is None:
        raise NotFound("no such webhook endpoint")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    endpoint_id: str,
    changes: dict[str, Any],
    *,
    settings: WebhookSettings,
    env: str,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, principal, endpoint_id, lock=True)
    if "url" in changes:
        endpoint.url = checked_url(changes["url"], settings, env)
    if "event_types" in changes:
        endpoint.event_types = checked_event_types(changes["event_types"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "enabled" in changes:
        endpoint.enabled = bool(changes["enabled"])
    endpoint.updated_at = utcnow()
    await session.flush()
    await audit.append(
        session,
        principal,
        "webhook_endpoint.updated",
        object_type="webhook_endpoint",
        object_id=endpoint_id,
        details={k: v for k, v in changes.items() if k in ("url", "event_types", "enabled")},
    )
    return endpoint


async def delete_endpoint(session: AsyncSession, principal: Principal, endpoint_id: str) -> None:
    """Delete the endpoint; its messages (pending ones too) and their attempts go with it."""
    endpoint = await get_endpoint(session, principal, endpoint_id, lock=True)
    await session.delete(endpoint)
    await session.flush()
    await audit.append(
        session,
        principal,
        "webhook_endpoint.deleted",
        object_type="webhook_endpoint",
        object_id=endpoint_id,
    )


async def rotate_secret(
    session: AsyncSession,
    principal: Principal,
    endpoint_id: str,
    *,
    settings: WebhookSettings,
    secret_key: str,
) -> Created:
    """A new secret signs from now on; the old one also signs for the grace period, so that a
    receiver can switch without refusing a message (the signature header carries both)."""
    endpoint = await get_endpoint(session, principal, endpoint_id, lock=True)
    now = utcnow()
    if settings.secret_grace_seconds > 0:
        endpoint.previous_secret_sealed = endpoint.secret_sealed
        endpoint.previous_secret_expires_at = now + timedelta(seconds=settings.secret_grace_seconds)
    else:
        endpoint.previous_secret_sealed = None
        endpoint.previous_secret_expires_at = None
    secret = new_secret()
    endpoint.secret_sealed = seal_secret(secret_key, endpoint.id, secret)
    endpoint.updated_at = now
    await session.flush()
    await audit.append(
        session,
        principal,
        "webhook_endpoint.secret_rotated",
        object_type="webhook_endpoint",
        object_id=endpoint_id,
    )
    return Created(endpoint, secret)


async def send_test(
    session: AsyncSession, principal: Principal, endpoint_id: str
) -> WebhookMessage:
    """A ``webhook.test`` message to this endpoint, whatever it subscribes to."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it to send a test")
    event_id = ids.new_id("evt")
    payload = body("webhook.test", {"endpoint_id": endpoint.id, "event_id": event_id}, utcnow())
    message_id = await repository.add_message(session, endpoint, event_id, "webhook.test", payload)
    found = await repository.message(session, principal.organization_id, message_id)
    assert found is not None
    return found


async def get_message(
    session: AsyncSession, principal: Principal, message_id: str, *, lock: bool = False
) -> WebhookMessage:
    found = await repository.message(session, principal.organization_id, message_id, lock=lock)
    if found is None:
        raise NotFound("no such webhook message")
    return found


async def replay(session: AsyncSession, principal: Principal, message_id: str) -> WebhookMessage:
    """Queue a delivered or dead message again, as new attempts with the same ``webhook-id``."""
    found = await get_message(session, principal, message_id, lock=True)
    if found.state == MessageState.pending:
        raise Conflict("the message is still queued", extra={"state": found.state})
    await repository.requeue(session, found, utcnow())
    await audit.append(
        session,
        principal,
        "webhook_message.replayed",
        object_type="webhook_message",
        object_id=message_id,
    )
    return found
