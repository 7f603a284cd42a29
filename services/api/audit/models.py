"""The audit log table (``platform.audit_log``): append-only, each row chained to the previous.

``hash = sha256(prev_hash ‖ canonical(row))`` where ``canonical`` is RFC 8785 JSON of every column
but the hash itself; the migration adds a trigger that refuses UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

GENESIS_HASH = "0" * 64


class Outcome(StrEnum):
    success = "success"
    failure = "failure"


class AuditEntry(SQLModel, table=True):
    """One attributable change (or refused attempt) and its place in the chain."""

    __tablename__ = "audit_log"
    __table_args__ = {"schema": "platform"}

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    actor_type: str = Field(sa_column=Column(String(20), nullable=False))
    actor_id: str | None = Field(default=None, sa_column=Column(String(64)))
    organization_id: str | None = Field(default=None, sa_column=Column(String(40)))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    object_type: str | None = Field(default=None, sa_column=Column(String(40)))
    object_id: str | None = Field(default=None, sa_column=Column(String(64)))
    outcome: str = Field(sa_column=Column(String(20), nullable=False))
    request_id: str | None = Field(default=None, sa_column=Column(String(128)))
    details: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
