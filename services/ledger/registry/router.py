"""``/v1/registry/…``: read-only, no authentication, like the ledger's proofs — a bank checks that a
financing is registered on chain before it funds, without trusting the platform's API.

- ``GET /v1/registry/operations/{operation_id}``: state, outcome, transaction and block;
- ``GET /v1/registry/financings/{financing_id}``: the financing's operations;
- ``GET /v1/registry/status/{fingerprint}``: ``status(bytes32)`` read from the chain.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from web3.exceptions import Web3Exception

from qilian.kit import db
from qilian.kit.errors import NotFound, ServiceUnavailable
from qilian.kit.settings import Settings
from services.ledger.registry import repository, service
from services.ledger.registry.schemas import (
    FinancingOperations,
    FingerprintStatus,
    OperationPublic,
)

OperationId = Annotated[str, Path(min_length=1, max_length=64, description="the operation's id")]
FinancingId = Annotated[str, Path(min_length=1, max_length=64, description="the financing's id")]
Fingerprint = Annotated[
    str,
    Path(
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="an on-chain fingerprint (0x and 64 hex characters)",
    ),
]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "the ledger knows no such operation or financing (problem+json)"}
}


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/v1/registry", tags=["registry"])

    @api.get("/operations/{operation_id}", response_model=OperationPublic, responses=_NOT_FOUND)
    async def operation(operation_id: OperationId) -> Any:
        """One operation: its state (pending, sent, done, refused), error, transaction, block."""
        async with db.transaction() as session:
            found = await repository.get(session, operation_id)
            if found is None:
                raise NotFound(f"no registry operation {operation_id}")
            return OperationPublic.model_validate(found)

    @api.get("/financings/{financing_id}", response_model=FinancingOperations, responses=_NOT_FOUND)
    async def financing(financing_id: FinancingId) -> Any:
        """The financing's register and release operations, oldest first."""
        async with db.transaction() as session:
            found = await repository.for_financing(session, financing_id)
            if not found:
                raise NotFound(f"no registry operation of financing {financing_id}")
            return FinancingOperations(
                financing_id=financing_id,
                operations=[OperationPublic.model_validate(o) for o in found],
            )

    @api.get(
        "/status/{fingerprint}",
        response_model=FingerprintStatus,
        responses={503: {"description": "the chain or the contract is unavailable"}},
    )
    async def status(fingerprint: Fingerprint) -> Any:
        """Whether a financing of this fingerprint is active on chain now, and which."""
        async with db.transaction() as session:
            contract = await service.registry_contract(session, settings)
        if contract is None:
            raise ServiceUnavailable("no FinancingRegistry deployment for this chain")
        try:
            async with db.transaction() as session:
                found = await service.chain_status(session, settings, fingerprint.lower())
        except (OSError, Web3Exception) as exc:
            raise ServiceUnavailable("the chain did not answer") from exc
        return FingerprintStatus(
            chain_id=settings.chain_id,
            contract=contract,
            fingerprint=fingerprint.lower(),
            active=found.active,
            financing_ref=found.financing_ref if found.active else None,
            since=found.since if found.active else None,
        )

    return api
