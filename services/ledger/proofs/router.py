"""``/v1/proofs/…``, ``/v1/anchors/{batch_id}``, ``POST /v1/anchoring/status`` and
``POST /v1/verify``: read-only, no authentication — they are for auditors, and they show a record
only once it is anchored. ``POST /v1/anchoring/status`` is the light read of many events at once
(the api's lists): statuses only, no bundle.

Decision (docs/anchoring.md, "The ledger's proof endpoints"): an event that is known but not yet
anchored answers ``409`` ``application/problem+json`` of type ``not-anchored-yet`` with
``Retry-After`` and only the event's hashes, so that ``curl -f … > bundle.json`` never saves
something that is not a bundle.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse

from qilian.kit import db
from qilian.kit.errors import InvalidInput, PayloadTooLarge, problem_response
from qilian.kit.settings import Settings
from services.ledger.proofs import service
from services.ledger.proofs.schemas import (
    AnchorInfo,
    AnchoringStatuses,
    AnchoringStatusQuery,
    ReceivableProofs,
)
from services.ledger.records.bundle import UINT64_MAX, ProofBundle
from services.ledger.records.verification import VerificationReport, bundles_in

MAX_VERIFY_BUNDLES: Final = 100
ANCHOR_STATUS_HEADER: Final = "Qilian-Anchor-Status"

EventId = Annotated[str, Path(min_length=1, max_length=128, description="the event's id")]
ReceivableId = Annotated[str, Path(min_length=1, max_length=128, description="the receivable's id")]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "the ledger has no such record (problem+json)"},
    409: {
        "description": "known but not anchored yet: only its hashes, with Retry-After "
        "(problem+json, type not-anchored-yet)"
    },
}


def router(settings: Settings) -> APIRouter:
    """The auditor's endpoints, bound to the ledger's settings (chain id, RPC endpoint)."""
    api = APIRouter(prefix="/v1", tags=["proofs"])

    @api.get(
        "/proofs/events/{event_id}",
        response_model=ProofBundle,
        responses=_PROBLEMS,
        summary="The proof bundle (qilian-proof/1) of one anchored event",
    )
    async def event_proof(event_id: EventId, response: Response) -> Any:
        """The event's ``qilian-proof/1`` bundle once its batch is mined; header
        ``Qilian-Anchor-Status`` says ``anchored`` or ``final``."""
        try:
            async with db.transaction() as session:
                bundle, status = await service.event_bundle(session, settings, event_id)
        except service.NotAnchoredYet as exc:
            return problem_response(
                exc.to_problem(f"/v1/proofs/events/{event_id}"),
                headers={"Retry-After": str(service.RETRY_AFTER_SECONDS)},
            )
        response.headers[ANCHOR_STATUS_HEADER] = status
        return bundle

    @api.get(
        "/proofs/receivables/{receivable_id}",
        response_model=ReceivableProofs,
        responses={404: _PROBLEMS[404]},
        summary="Every event's bundle of a receivable, in seq order",
    )
    async def receivable_proofs(
        receivable_id: ReceivableId,
        latest: Annotated[bool, Query(description="only the newest event")] = False,
    ) -> ReceivableProofs:
        """Each event with its status (``pending``, ``anchored``, ``final``), hashes, and its
        bundle once anchored (``null`` before: nothing but the hashes of a pending event)."""
        async with db.transaction() as session:
            return await service.receivable_proofs(session, settings, receivable_id, latest=latest)

    @api.post(
        "/anchoring/status",
        response_model=AnchoringStatuses,
        summary="The anchoring status of many events, without their proofs",
    )
    async def anchoring_status(body: AnchoringStatusQuery) -> AnchoringStatuses:
        """Each asked event the ledger has a record of, with its status (``pending``,
        ``anchored``, ``final``), batch id and, once anchored, transaction and block; events it
        has no record of are absent. 1 to 500 ids (``422`` naming ``event_ids`` otherwise)."""
        async with db.transaction() as session:
            return await service.statuses(session, body.event_ids)

    @api.get(
        "/anchors/{batch_id}",
        response_model=AnchorInfo,
        responses={404: _PROBLEMS[404]},
        summary="A batch: root, leaf count and where it is on chain",
    )
    async def anchor(
        batch_id: Annotated[int, Path(ge=1, le=UINT64_MAX)],
    ) -> AnchorInfo:
        async with db.transaction() as session:
            return await service.anchor_info(session, settings, batch_id)

    @api.post(
        "/verify",
        response_model=VerificationReport,
        summary="Verify bundles on chain, step by step",
    )
    async def verify(
        body: Annotated[
            dict[str, Any] | list[Any],
            Body(
                description="a bundle, a list of bundles, or the body of "
                "GET /v1/proofs/receivables/{id}"
            ),
        ],
    ) -> JSONResponse:
        """The same steps as ``qilian verify``, against the ledger's chain and its
        ``ReceivableAnchor``; ``200`` with ``ok`` true or false — a bundle that fails is a
        result, not an error."""
        bundles = bundles_in(body, "body")
        if not bundles:
            raise InvalidInput("no bundle in the request (events not anchored yet carry none)")
        if len(bundles) > MAX_VERIFY_BUNDLES:
            raise PayloadTooLarge(f"at most {MAX_VERIFY_BUNDLES} bundles per request")
        async with db.transaction() as session:
            contract = await service.anchor_contract(session, settings)
        report = await service.verify(settings, contract, bundles)
        return JSONResponse(report.model_dump(mode="json"))

    return api
