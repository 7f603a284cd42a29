"""Tables of webhooks: ``platform.webhook_endpoints``, ``platform.webhook_messages`` and
``platform.webhook_attempts``.

An endpoint belongs to one organisation; its signing secret is stored sealed (AES-256-GCM under
the platform secret, the endpoint id as associated data), never in clear. A message is one event
for one endpoint: its body is fixed when published (the exact bytes that are signed), its id is the
``webhook-id`` every attempt carries. A pending message is due at ``next_attempt_at``; a dispatcher
claims it by moving that time past its lease (``lease_id`` names the claim). Each attempt leaves a
row. Deleting an endpoint deletes its messages and attempts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlmodel import Field, SQLModel


class MessageState(StrEnum):
    pending = "pending"  # waiting for its next attempt (or in flight)
    delivered = "delivered"  # a receiver answered 2xx
    dead = "dead"  # every attempt of the schedule failed


class WebhookEndpoint(SQLModel, table=True):
    """Where an organisation wants its events (``whk_…``)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint("cardinality(event_types) >= 1", name="event_types_not_empty"),
        Index("ix_webhook_endpoints_organization_id", "organization_id", "id"),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    organization_id: str = Field(
        sa_column=Column(String(40), ForeignKey("platform.organizations.id"), nullable=False)
    )
    url: str = Field(sa_column=Column(String(2000), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(String(500)))
    event_types: list[str] = Field(sa_column=Column(ARRAY(String(100)), nullable=False))
    enabled: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true"))
    )
    secret_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    previous_secret_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class WebhookMessage(SQLModel, table=True):
    """One event for one endpoint (``msg_…``, the ``webhook-id``)."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state_known"),
        CheckConstraint(
            "attempts >= 0 AND round_attempts >= 0 AND round_attempts <= attempts",
            name="attempts_not_negative",
        ),
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_messages_endpoint_event"),
        Index(
            "ix_webhook_messages_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_webhook_messages_dead", "dead_at", postgresql_where=text("state = 'dead'")),
        Index("ix_webhook_messages_endpoint_id", "endpoint_id", "seq"),
        {"schema": "platform"},
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), nullable=False)
    )  # publication order, for listing
    endpoint_id: str = Field(
        sa_column=Column(
            String(40),
            ForeignKey("platform.webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    organization_id: str = Field(sa_column=Column(String(40), nullable=False))
    event_id: str = Field(sa_column=Column(String(64), nullable=False))
    event_type: str = Field(sa_column=Column(String(100), nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the exact signed body
    state: str = Field(
        default=MessageState.pending.value,
        sa_column=Column(String(20), nullable=False, server_default="pending"),
    )
    attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )  # every attempt ever made (numbers the attempts)
    round_attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )  # attempts since it was (re)queued: drives the schedule and the dead letter
    next_attempt_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    lease_id: str | None = Field(default=None, sa_column=Column(String(32)))
    last_error: str | None = Field(default=None, sa_column=Column(String(500)))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    dead_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class WebhookAttempt(SQLModel, table=True):
    """One try to deliver a message: when, how long, what the receiver answered or what failed."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("message_id", "attempt", name="uq_webhook_attempts_message_attempt"),
        CheckConstraint("outcome IN ('delivered', 'failed')", name="outcome_known"),
        {"schema": "platform"},
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    message_id: str = Field(
        sa_column=Column(
            String(40),
            ForeignKey("platform.webhook_messages.id", ondelete="CASCADE"),
            nullable=False,
        )
    )
    attempt: int = Field(sa_column=Column(Integer, nullable=False))
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    duration_ms: int = Field(sa_column=Column(Integer, nullable=False))
    outcome: str = Field(sa_column=Column(String(20), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer))
    error: str | None = Field(default=None, sa_column=Column(String(500)))
