"""The directory side of organisations: audited registration and the lists every caller reads.

Registration's rules (USCC check, cluster for core firms, unique tax id) are
:func:`services.api.organizations.service.register`; this adds the audit trail.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit.errors import NotFound
from services.api.audit import service as audit
from services.api.auth.models import Principal
from services.api.auth.pagination import paginate
from services.api.organizations import service as org_service
from services.api.organizations.models import Organization, OrganizationBase, Role
from services.api.organizations.schemas import OrganizationCreate


async def register(
    session: AsyncSession, actor: Principal | audit.Actor, data: OrganizationCreate
) -> Organization:
    org = await org_service.register(session, OrganizationBase.model_validate(data.model_dump()))
    await audit.append(
        session,
        actor,
        "organization.registered",
        object_type="organization",
        object_id=org.id,
        details={"role": str(org.role), "tax_scheme": org.tax_scheme, "tax_id": org.tax_id},
    )
    return org


async def list_organizations(
    session: AsyncSession, limit: int, cursor: str | None, role: Role | None = None
) -> tuple[list[Organization], str | None]:
    query = select(Organization)
    if role is not None:
        query = query.where(col(Organization.role) == role.value)
    rows, next_cursor = await paginate(session, query, col(Organization.id), limit, cursor)
    return rows, next_cursor


async def get(session: AsyncSession, organization_id: str) -> Organization:
    org = await session.get(Organization, organization_id)
    if org is None:
        raise NotFound("no such organisation")
    return org
