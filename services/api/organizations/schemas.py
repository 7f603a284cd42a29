"""API shapes of the organisation directory: explicit request fields, no secrets in responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.api.organizations.models import Cluster, Role


class OrganizationCreate(BaseModel):
    """What the operator may set; ids, timestamps and credentials are the platform's."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role
    tax_id: str = Field(min_length=1, max_length=64)
    tax_scheme: str = Field(default="CN-USCC", min_length=1, max_length=32)
    cluster: Cluster | None = None
    signing_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    green: bool = False


class OrganizationPublic(BaseModel):
    """A directory entry, visible to every authenticated caller."""

    id: str
    name: str
    role: Role
    cluster: Cluster | None
    green: bool
    signing_address: str | None


class OrganizationDetail(OrganizationPublic):
    """What the operator sees of a registration."""

    tax_id: str
    tax_scheme: str
    created_at: datetime | None
