"""All SQL of the deployment record."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.ledger.deployments.models import Deployment


async def for_chain(session: AsyncSession, chain_id: int) -> dict[str, Deployment]:
    rows = await session.execute(select(Deployment).where(col(Deployment.chain_id) == chain_id))
    return {row.name: row for row in rows.scalars()}


async def upsert(
    session: AsyncSession, chain_id: int, name: str, address: str, tx_hash: str
) -> None:
    stmt = insert(Deployment).values(chain_id=chain_id, name=name, address=address, tx_hash=tx_hash)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["chain_id", "name"],
            set_={"address": address, "tx_hash": tx_hash, "deployed_at": stmt.excluded.deployed_at},
        )
    )
