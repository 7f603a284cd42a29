"""HTTP side of webhooks: an organisation's endpoints, their messages, replays, and the catalogue
of event types. Every object is scoped to the caller's organisation (another's is 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlmodel import col

from services.api.auth.dependencies import CurrentPrincipal, Session, platform_settings
from services.api.auth.dependencies import require_roles as _require_roles
from services.api.auth.models import Principal
from services.api.auth.pagination import Cursor, Limit, Page, paginate
from services.api.organizations.models import Role
from services.api.webhooks import events, repository, service
from services.api.webhooks.models import MessageState, WebhookEndpoint, WebhookMessage
from services.api.webhooks.schemas import (
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
    EndpointWithSecret,
    EventTypePublic,
    MessagePublic,
)
from services.api.webhooks.settings import WebhookSettings, get_webhook_settings

router = APIRouter(tags=["webhooks"])

Owner = Annotated[
    Principal,
    Depends(_require_roles(Role.bank, Role.supplier, Role.core_firm, Role.guarantor)),
]


def webhook_settings(request: Request) -> WebhookSettings:
    config = getattr(request.app.state, "webhook_settings", None)
    return config if isinstance(config, WebhookSettings) else get_webhook_settings()


Config = Annotated[WebhookSettings, Depends(webhook_settings)]


def _with_secret(created: service.Created) -> EndpointWithSecret:
    return EndpointWithSecret(
        **EndpointPublic.of(created.endpoint).model_dump(), secret=created.secret
    )


async def _message_public(session: Session, row: WebhookMessage) -> MessagePublic:
    attempts = await repository.attempts_of(session, [row.id])
    return MessagePublic.of(row, attempts[row.id])


@router.get("/v1/webhook-event-types", response_model=list[EventTypePublic])
async def list_event_types(principal: CurrentPrincipal) -> list[EventTypePublic]:
    """Every event type an endpoint may subscribe to (also as ``family.*``, or ``*``)."""
    return [EventTypePublic(name=k, description=v) for k, v in events.EVENT_TYPES.items()]


@router.post(
    "/v1/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
)
async def create_endpoint(
    body: EndpointCreate, principal: Owner, session: Session, config: Config, request: Request
) -> EndpointWithSecret:
    """Register an endpoint; the signing secret (``whsec_…``) is in this answer only."""
    platform = platform_settings(request)
    created = await service.create_endpoint(
        session,
        principal,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        settings=config,
        env=platform.env,
        secret_key=platform.secret_key,
    )
    return _with_secret(created)


@router.get("/v1/webhook-endpoints", response_model=Page[EndpointPublic])
async def list_endpoints(
    principal: Owner, session: Session, limit: Limit = 50, cursor: Cursor = None
) -> Page[EndpointPublic]:
    """The caller's organisation's endpoints."""
    query = repository.endpoints_of(principal.organization_id)
    rows, next_cursor = await paginate(session, query, col(WebhookEndpoint.id), limit, cursor)
    return Page[EndpointPublic](items=[EndpointPublic.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointPublic)
async def get_endpoint(endpoint_id: str, principal: Owner, session: Session) -> EndpointPublic:
    return EndpointPublic.of(await service.get_endpoint(session, principal, endpoint_id))


@router.patch("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointPublic)
async def update_endpoint(
    endpoint_id: str,
    body: EndpointUpdate,
    principal: Owner,
    session: Session,
    config: Config,
    request: Request,
) -> EndpointPublic:
    """Change the URL, the event types, the description, or enable/disable (disabled: nothing
    new is queued for it and its queued messages wait until it is enabled again)."""
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "event_types", "enabled"):
        if name in changes and changes[name] is None:
            del changes[name]
    row = await service.update_endpoint(
        session,
        principal,
        endpoint_id,
        changes,
        settings=config,
        env=platform_settings(request).env,
    )
    return EndpointPublic.of(row)


@router.delete("/v1/webhook-endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(endpoint_id: str, principal: Owner, session: Session) -> Response:
    """Delete the endpoint with its messages (queued ones are not sent)."""
    await service.delete_endpoint(session, principal, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
async def rotate_secret(
    endpoint_id: str, principal: Owner, session: Session, config: Config, request: Request
) -> EndpointWithSecret:
    """A new secret, shown once; the old one keeps signing too until
    ``previous_secret_expires_at``."""
    created = await service.rotate_secret(
        session,
        principal,
        endpoint_id,
        settings=config,
        secret_key=platform_settings(request).secret_key,
    )
    return _with_secret(created)


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessagePublic,
)
async def send_test(endpoint_id: str, principal: Owner, session: Session) -> MessagePublic:
    """Queue a ``webhook.test`` message to this endpoint."""
    row = await service.send_test(session, principal, endpoint_id)
    return await _message_public(session, row)


@router.get("/v1/webhook-endpoints/{endpoint_id}/messages", response_model=Page[MessagePublic])
async def list_messages(
    endpoint_id: str,
    principal: Owner,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    state: MessageState | None = None,
) -> Page[MessagePublic]:
    """The endpoint's messages in publication order, each with its attempts."""
    endpoint = await service.get_endpoint(session, principal, endpoint_id)
    query = repository.messages_of(endpoint.id, state.value if state else None)
    rows, next_cursor = await paginate(session, query, col(WebhookMessage.seq), limit, cursor)
    attempts = await repository.attempts_of(session, [r.id for r in rows])
    return Page[MessagePublic](
        items=[MessagePublic.of(r, attempts[r.id]) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/v1/webhook-messages/{message_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessagePublic,
)
async def replay_message(message_id: str, principal: Owner, session: Session) -> MessagePublic:
    """Send a delivered or dead message again (new attempts, the same ``webhook-id``)."""
    row = await service.replay(session, principal, message_id)
    return await _message_public(session, row)
