"""The ledger's inbox: every receivable event that reached the ledger, exactly once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class InboxEvent(SQLModel, table=True):
    """An event received from the outbox (table ``ledger.event_inbox``); batches read it."""

    __tablename__ = "event_inbox"
    __table_args__ = {"schema": "ledger"}

    event_id: str = Field(sa_column=Column(String(64), primary_key=True))
    topic: str = Field(sa_column=Column(String(100), nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    received_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    processed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    error: str | None = Field(default=None, sa_column=Column(String(1000)))
