"""``GET /v1/chain``: the chain id and the contract addresses the ledger anchors with (read-only,
no auth: they are public). The API reads it for the EIP-712 domain of confirmation signatures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qilian.kit import db
from qilian.kit.settings import Settings
from services.ledger.deployments import service as deployments


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["chain"])

    @api.get("/chain")
    async def chain() -> dict[str, Any]:
        async with db.transaction() as session:
            contracts = await deployments.addresses(session, settings)
        return {"chain_id": settings.chain_id, "contracts": contracts}

    return api
