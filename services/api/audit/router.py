"""HTTP side of the audit log: operators, auditors and regulators read it and check its head."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import select
from sqlmodel import col

from services.api.audit import service as audit
from services.api.audit.models import AuditEntry
from services.api.auth.dependencies import Session, require_roles
from services.api.auth.models import Principal
from services.api.auth.pagination import Cursor, Limit, Page, paginate
from services.api.organizations.models import Role

router = APIRouter(prefix="/v1/audit-log", tags=["audit"])

Reader = Annotated[Principal, Depends(require_roles(Role.operator, Role.auditor, Role.regulator))]


class AuditEntryPublic(BaseModel):
    """One audit row with its place in the chain."""

    seq: int
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    organization_id: str | None
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class ChainCheck(BaseModel):
    """The chain recomputed from the stored rows: its head, or the first row that fails."""

    ok: bool
    rows: int
    head_hash: str
    first_bad_seq: int | None
    reason: str | None


@router.get("", response_model=Page[AuditEntryPublic])
async def list_entries(
    principal: Reader, session: Session, limit: Limit = 50, cursor: Cursor = None
) -> Page[AuditEntryPublic]:
    rows, next_cursor = await paginate(
        session, select(AuditEntry), col(AuditEntry.seq), limit, cursor
    )
    return Page[AuditEntryPublic](
        items=[AuditEntryPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )


@router.get("/verify", response_model=ChainCheck)
async def verify(principal: Reader, session: Session) -> ChainCheck:
    """Recompute the whole chain now (an auditor can also do it offline from the rows)."""
    result = await audit.verify(session)
    return ChainCheck(**result.__dict__)
