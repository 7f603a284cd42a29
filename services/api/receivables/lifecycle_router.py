"""HTTP side of the receivable lifecycle: confirmation (确权, single and bulk, EIP-712 signed when
the core firm registered a key), vouchers (split, transfer, lineage), payments, write-off and
disputes. The rules live in :mod:`services.api.receivables.lifecycle`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from qilian.kit.errors import InvalidInput, ServiceUnavailable
from services.api.auth.dependencies import (
    CurrentPrincipal,
    Session,
    platform_settings,
    require_roles,
)
from services.api.auth.models import Principal
from services.api.organizations.models import Organization, Role
from services.api.receivables import ledger, lifecycle, service, signatures
from services.api.receivables.lifecycle_schemas import (
    BulkConfirmRequest,
    BulkConfirmResponse,
    BulkConfirmResult,
    ConfirmRequest,
    DisputePublic,
    DisputeRequest,
    DisputeResponse,
    LineageNodePublic,
    LineageResponse,
    PaymentPublic,
    PaymentRequest,
    PaymentResponse,
    RejectRequest,
    ResolveRequest,
    SplitRequest,
    SplitResponse,
    TransferRequest,
    TransferResponse,
    WriteOffRequest,
)
from services.api.receivables.router import ledger_client
from services.api.receivables.schemas import ReceivablePublic
from services.api.receivables.settings import ReceivableSettings, get_receivable_settings

router = APIRouter(prefix="/v1/receivables", tags=["receivables"])
disputes_router = APIRouter(prefix="/v1/disputes", tags=["receivables"])

CoreFirm = Annotated[Principal, Depends(require_roles(Role.core_firm))]
Supplier = Annotated[Principal, Depends(require_roles(Role.supplier))]
DebtorOrHolder = Annotated[Principal, Depends(require_roles(Role.supplier, Role.core_firm))]
HolderOrFinancier = Annotated[Principal, Depends(require_roles(Role.supplier, Role.bank))]


def receivable_settings(request: Request) -> ReceivableSettings:
    config = getattr(request.app.state, "receivable_settings", None)
    return config if isinstance(config, ReceivableSettings) else get_receivable_settings()


Config = Annotated[ReceivableSettings, Depends(receivable_settings)]


def domain_source(request: Request) -> lifecycle.DomainSource:
    """The EIP-712 domain: chain id and ``ReceivableAnchor`` from settings when pinned
    (``QILIAN_ANCHOR_ADDRESS``), else from the ledger's ``GET /v1/chain`` (asked only when a
    signature is to be checked)."""
    settings = platform_settings(request)

    async def resolve() -> signatures.Domain:
        if settings.anchor_address:
            return signatures.Domain(settings.chain_id, settings.anchor_address)
        try:
            body = await ledger_client(request).chain()
        except ledger.LedgerUnavailable:
            raise ServiceUnavailable("the ledger cannot be reached; try again later") from None
        address = (body.get("contracts") or {}).get("ReceivableAnchor")
        chain_id = body.get("chain_id")
        if not isinstance(address, str) or not isinstance(chain_id, int):
            raise ServiceUnavailable("the ledger has no ReceivableAnchor deployed yet")
        return signatures.Domain(chain_id, address)

    return resolve


Domain = Annotated[lifecycle.DomainSource, Depends(domain_source)]


@router.get("/{receivable_id}/confirmation-message")
async def confirmation_message(
    receivable_id: str, principal: CurrentPrincipal, session: Session, domain: Domain
) -> dict[str, object]:
    """The EIP-712 typed data the debtor signs to confirm (for ``qilian sign-confirmation`` and
    ``cast wallet sign --data``), and the signer the API expects."""
    row = await service.get_visible(session, principal, receivable_id)
    debtor = await session.get(Organization, row.debtor_id)
    return {
        "signing_address": debtor.signing_address if debtor else None,
        "typed_data": signatures.typed_data(row, await domain()),
    }


@router.post("/bulk-confirm", response_model=BulkConfirmResponse)
async def bulk_confirm(
    body: BulkConfirmRequest, principal: CoreFirm, session: Session, domain: Domain, config: Config
) -> BulkConfirmResponse:
    """Confirm many of the caller's pending payables; each item succeeds or fails on its own."""
    if body.all_pending == bool(body.items):
        raise InvalidInput("give either items or all_pending: true")
    if body.all_pending:
        ids = await lifecycle.pending_queue(
            session, principal.organization_id, config.bulk_confirm_max
        )
        items: list[tuple[str, str | None]] = [(i, None) for i in ids]
    else:
        items = [(i.receivable_id, i.signature) for i in body.items]
    outcomes = await lifecycle.bulk_confirm(session, principal, items, domain)
    results = [
        BulkConfirmResult(
            receivable_id=o.receivable_id,
            status=o.status,
            receivable=ReceivablePublic.of(o.receivable) if o.receivable else None,
            problem=o.problem,
        )
        for o in outcomes
    ]
    confirmed = sum(1 for o in outcomes if o.status == 200)
    return BulkConfirmResponse(
        confirmed=confirmed, refused=len(outcomes) - confirmed, results=results
    )


@router.post("/{receivable_id}/confirm", response_model=ReceivablePublic)
async def confirm(
    receivable_id: str,
    principal: CoreFirm,
    session: Session,
    domain: Domain,
    body: Annotated[ConfirmRequest | None, Body()] = None,
) -> ReceivablePublic:
    """确权: the debtor core firm confirms (``pending`` → ``confirmed``)."""
    signature = body.signature if body else None
    row = await lifecycle.confirm(session, principal, receivable_id, signature, domain)
    return ReceivablePublic.of(row)


@router.post("/{receivable_id}/reject", response_model=ReceivablePublic)
async def reject(
    receivable_id: str, body: RejectRequest, principal: CoreFirm, session: Session
) -> ReceivablePublic:
    return ReceivablePublic.of(
        await lifecycle.reject(session, principal, receivable_id, body.reason)
    )


@router.post("/{receivable_id}/cancel", response_model=ReceivablePublic)
async def cancel(
    receivable_id: str, body: RejectRequest, principal: Supplier, session: Session
) -> ReceivablePublic:
    """The supplier withdraws an unconfirmed receivable it uploaded (``pending`` → cancelled)."""
    return ReceivablePublic.of(
        await lifecycle.cancel(session, principal, receivable_id, body.reason)
    )


@router.post("/{receivable_id}/split", response_model=SplitResponse, status_code=201)
async def split(
    receivable_id: str, body: SplitRequest, principal: Supplier, session: Session, config: Config
) -> SplitResponse:
    """The holder splits the open amount into parts that sum to it exactly."""
    children = await lifecycle.split(
        session, principal, receivable_id, [p.amount for p in body.parts], config
    )
    parent = await service.get_visible(session, principal, receivable_id)
    return SplitResponse(
        parent=ReceivablePublic.of(parent), children=[ReceivablePublic.of(c) for c in children]
    )


@router.post("/{receivable_id}/transfer", response_model=TransferResponse, status_code=201)
async def transfer(
    receivable_id: str,
    body: TransferRequest,
    principal: Supplier,
    session: Session,
    config: Config,
) -> TransferResponse:
    """The holder passes the receivable, or a part of it (split first), to another supplier."""
    outcome = await lifecycle.transfer(
        session, principal, receivable_id, body.to_organization_id, body.amount, config
    )
    parent = await service.get_visible(session, principal, receivable_id)
    return TransferResponse(
        parent=ReceivablePublic.of(parent),
        transferred=ReceivablePublic.of(outcome.transferred),
        remainder=ReceivablePublic.of(outcome.remainder) if outcome.remainder else None,
    )


@router.get("/{receivable_id}/lineage", response_model=LineageResponse)
async def lineage(
    receivable_id: str, principal: CurrentPrincipal, session: Session
) -> LineageResponse:
    """The tree of parts (多级穿透): the debtor sees all of it."""
    root_id, nodes = await lifecycle.lineage(session, principal, receivable_id)
    return LineageResponse(
        root_id=root_id,
        nodes=[
            LineageNodePublic(
                id=n.receivable.id,
                parent_id=n.receivable.parent_id,
                tier=n.receivable.tier,
                depth=n.receivable.depth,
                holding=n.receivable.holding,
                receivable=ReceivablePublic.of(n.receivable) if n.visible else None,
            )
            for n in nodes
        ],
    )


@router.post("/{receivable_id}/payments", response_model=PaymentResponse, status_code=201)
async def record_payment(
    receivable_id: str, body: PaymentRequest, principal: CoreFirm, session: Session
) -> PaymentResponse:
    """The debtor records a payment (full, partial, short or over)."""
    row, payment = await lifecycle.record_payment(
        session, principal, receivable_id, body.amount, body.paid_at, body.reference, body.final
    )
    return PaymentResponse(payment=PaymentPublic.of(payment), receivable=ReceivablePublic.of(row))


@router.get("/{receivable_id}/payments", response_model=list[PaymentPublic])
async def list_payments(
    receivable_id: str, principal: CurrentPrincipal, session: Session
) -> list[PaymentPublic]:
    return [
        PaymentPublic.of(p) for p in await lifecycle.payments(session, principal, receivable_id)
    ]


@router.post("/{receivable_id}/write-off", response_model=ReceivablePublic)
async def write_off(
    receivable_id: str, body: WriteOffRequest, principal: HolderOrFinancier, session: Session
) -> ReceivablePublic:
    return ReceivablePublic.of(
        await lifecycle.write_off(session, principal, receivable_id, body.reason)
    )


@router.post("/{receivable_id}/disputes", response_model=DisputeResponse, status_code=201)
async def open_dispute(
    receivable_id: str, body: DisputeRequest, principal: DebtorOrHolder, session: Session
) -> DisputeResponse:
    """The debtor or the holder disputes: split, transfer and financing freeze until resolved."""
    row, dispute = await lifecycle.open_dispute(session, principal, receivable_id, body.reason)
    return DisputeResponse(dispute=DisputePublic.of(dispute), receivable=ReceivablePublic.of(row))


@router.get("/{receivable_id}/disputes", response_model=list[DisputePublic])
async def list_disputes(
    receivable_id: str, principal: CurrentPrincipal, session: Session
) -> list[DisputePublic]:
    return [
        DisputePublic.of(d) for d in await lifecycle.disputes(session, principal, receivable_id)
    ]


@disputes_router.post("/{dispute_id}/resolve", response_model=DisputeResponse)
async def resolve_dispute(
    dispute_id: str, body: ResolveRequest, principal: DebtorOrHolder, session: Session
) -> DisputeResponse:
    row, dispute = await lifecycle.resolve_dispute(session, principal, dispute_id, body.resolution)
    return DisputeResponse(dispute=DisputePublic.of(dispute), receivable=ReceivablePublic.of(row))
