"""API shapes of webhooks: endpoints (the secret only in the answers that create or rotate it),
messages with their attempts, the event-type catalogue."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.api.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage


class EndpointCreate(BaseModel):
    """Where to send and what: known event types, ``family.*`` or ``*``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="https URL of the receiver")
    event_types: list[str] = Field(min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)


class EndpointUpdate(BaseModel):
    """Fields to change; those left out stay."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class EndpointPublic(BaseModel):
    """An endpoint as its organisation sees it (never its secret)."""

    id: str
    organization_id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    previous_secret_expires_at: datetime | None = Field(
        description="until then the previous secret also signs (after a rotation)"
    )
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointPublic:
        return cls.model_validate(row, from_attributes=True)


class EndpointWithSecret(EndpointPublic):
    """The answer that creates or rotates a secret: shown this once."""

    secret: str = Field(description="whsec_… (Standard Webhooks); verify signatures with it")


class AttemptPublic(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None
    error: str | None

    @classmethod
    def of(cls, row: WebhookAttempt) -> AttemptPublic:
        return cls.model_validate(row, from_attributes=True)


class MessagePublic(BaseModel):
    """One event for one endpoint; ``id`` is the ``webhook-id`` header of every attempt."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    state: str = Field(description="pending, delivered or dead")
    attempts_count: int
    next_attempt_at: datetime | None = Field(description="when pending")
    last_error: str | None
    created_at: datetime | None
    delivered_at: datetime | None
    dead_at: datetime | None
    attempts: list[AttemptPublic]

    @classmethod
    def of(cls, row: WebhookMessage, attempts: list[WebhookAttempt]) -> MessagePublic:
        return cls(
            id=row.id,
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            event_type=row.event_type,
            state=row.state,
            attempts_count=row.attempts,
            next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            dead_at=row.dead_at,
            attempts=[AttemptPublic.of(a) for a in attempts],
        )


class EventTypePublic(BaseModel):
    name: str
    description: str
