"""The ledger service: hashing, Merkle batches, anchoring, proofs. Default port 8001.

The auditor's read-only side (proofs, anchors, verification) is served here directly so an auditor
need not go through the business API.
"""

from __future__ import annotations

from fastapi import FastAPI

from qilian.kit import db
from qilian.kit.app import create_service_app
from qilian.kit.health import broker_check, chain_check, check_database
from qilian.kit.settings import Settings, get_settings
from services.ledger.chain import router as chain_router
from services.ledger.deployments import service as deployments
from services.ledger.proofs import router as proofs
from services.ledger.registry import router as registry


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def anchor_address() -> str | None:
        async with db.transaction() as session:
            return (await deployments.addresses(session, settings)).get("ReceivableAnchor")

    app = create_service_app(
        service="ledger",
        title="Qilian SCF ledger",
        description="Anchoring of receivable events on chain, proofs and verification.",
        settings=settings,
        checks={
            "database": check_database,
            "broker": broker_check(settings),
            "chain": chain_check(settings, contract=anchor_address),
        },
    )
    app.include_router(proofs.router(settings))
    app.include_router(chain_router.router(settings))
    app.include_router(registry.router(settings))
    return app


app = create_app()
