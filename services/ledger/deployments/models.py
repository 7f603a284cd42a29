"""Where the contracts live on each chain: the ledger's record of its deployments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, String, func
from sqlmodel import Field, SQLModel


class Deployment(SQLModel, table=True):
    """A deployed contract (table ``ledger.deployments``), one per chain and name."""

    __tablename__ = "deployments"
    __table_args__ = {"schema": "ledger"}

    chain_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    name: str = Field(sa_column=Column(String(64), primary_key=True))
    address: str = Field(sa_column=Column(String(42), nullable=False))
    tx_hash: str = Field(sa_column=Column(String(66), nullable=False))
    deployed_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
