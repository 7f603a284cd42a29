"""Tables of the organisation directory: organisations and their API clients."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, ForeignKey, String, UniqueConstraint, func
from sqlmodel import Field, SQLModel


class Role(StrEnum):
    supplier = "supplier"
    core_firm = "core_firm"
    bank = "bank"
    guarantor = "guarantor"
    auditor = "auditor"
    regulator = "regulator"
    operator = "operator"


class Cluster(StrEnum):
    pv = "pv"
    lithium = "lithium"
    alloy = "alloy"
    chemicals = "chemicals"
    bio = "bio"


class OrganizationBase(SQLModel):
    """Fields shared by the table and the API shapes."""

    name: str = Field(max_length=200)
    role: Role
    tax_id: str = Field(max_length=64)
    tax_scheme: str = Field(default="CN-USCC", max_length=32)
    cluster: Cluster | None = None
    signing_address: str | None = Field(default=None, max_length=42)
    green: bool = False


class Organization(OrganizationBase, table=True):
    """An organisation (table ``platform.organizations``)."""

    __tablename__ = "organizations"
    __table_args__ = (
        UniqueConstraint("tax_scheme", "tax_id", name="uq_organizations_tax"),
        {"schema": "platform"},
    )

    id: str = Field(primary_key=True, max_length=40)
    role: Role = Field(sa_column=Column(String(20), nullable=False))
    cluster: Cluster | None = Field(default=None, sa_column=Column(String(20)))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class ApiClient(SQLModel, table=True):
    """A machine client's credentials; only a hash of the secret is kept."""

    __tablename__ = "api_clients"
    __table_args__ = {"schema": "platform"}

    client_id: str = Field(primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("platform.organizations.id"), nullable=False, index=True
        )
    )
    secret_hash: str = Field(max_length=128)
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
