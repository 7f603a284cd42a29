"""HTTP side of receivables: the caller's list, one receivable with its anchoring status, its
events, and its proof bundles (passed through from the ledger)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from qilian.kit.errors import Conflict, ServiceUnavailable, problem_response
from services.api.auth.dependencies import CurrentPrincipal, Session, platform_settings
from services.api.auth.pagination import Cursor, Limit, Page, paginate
from services.api.organizations.models import Cluster
from services.api.receivables import ledger, repository, service
from services.api.receivables.models import (
    Confirmation,
    Dispute,
    Financing,
    Holding,
    Receivable,
    Settlement,
)
from services.api.receivables.schemas import (
    Anchoring,
    EventAnchoringPublic,
    ReceivableDetail,
    ReceivableEventPublic,
    ReceivablePublic,
)

router = APIRouter(prefix="/v1/receivables", tags=["receivables"])


def ledger_client(request: Request) -> ledger.LedgerClient:
    """The ledger's HTTP API (tests may put an ``httpx`` transport on ``app.state``)."""
    transport = getattr(request.app.state, "ledger_transport", None)
    return ledger.LedgerClient(platform_settings(request).ledger_url, transport=transport)


async def ledger_session(request: Request) -> AsyncIterator[ledger.LedgerClient]:
    """The ledger client of one request: its calls share a connection pool, closed after it."""
    async with ledger_client(request) as client:
        yield client


Ledger = Annotated[ledger.LedgerClient, Depends(ledger_session)]


@router.get("", response_model=Page[ReceivablePublic])
async def list_receivables(
    principal: CurrentPrincipal,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_party: Annotated[
        Literal["creditor", "holder", "debtor", "financier"] | None,
        Query(alias="as", description="only where the caller is this party"),
    ] = None,
    confirmation: Confirmation | None = None,
    holding: Holding | None = None,
    financing: Financing | None = None,
    settlement: Settlement | None = None,
    dispute: Dispute | None = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
    cluster: Cluster | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
) -> Page[ReceivablePublic]:
    """The receivables the caller's organisation is a party to (creditor, holder or debtor)."""
    query = repository.list_query(
        principal.organization_id,
        as_party=as_party,
        confirmation=confirmation,
        holding=holding,
        financing=financing,
        settlement=settlement,
        dispute=dispute,
        currency=currency,
        cluster=cluster,
        due_from=due_from,
        due_to=due_to,
    )
    rows, next_cursor = await paginate(session, query, Receivable.id, limit, cursor)
    return Page[ReceivablePublic](
        items=[ReceivablePublic.of(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/{receivable_id}", response_model=ReceivableDetail)
async def get_receivable(
    receivable_id: str, principal: CurrentPrincipal, session: Session, client: Ledger
) -> ReceivableDetail:
    """One receivable (404 unless the caller is a party) with each event's anchoring status."""
    row = await service.get_visible(session, principal, receivable_id)
    events = await repository.events(session, row.id)
    status, items = await ledger.anchoring(client, row.id, [(e.event_id, e.seq) for e in events])
    return ReceivableDetail(
        **ReceivablePublic.of(row).model_dump(),
        anchoring=Anchoring(
            status=status,
            events=[EventAnchoringPublic.of(i) for i in items],
        ),
    )


@router.get("/{receivable_id}/events", response_model=list[ReceivableEventPublic])
async def list_events(
    receivable_id: str, principal: CurrentPrincipal, session: Session
) -> list[ReceivableEventPublic]:
    """The event history in ``seq`` order (parties and auditors)."""
    row = await service.get_visible(session, principal, receivable_id, auditors=True)
    return [ReceivableEventPublic.of(e) for e in await repository.events(session, row.id)]


class NotAnchoredYet(Conflict):
    slug, title = "not-anchored-yet", "Not anchored yet"


@router.get(
    "/{receivable_id}/proof",
    responses={
        200: {"description": "the ledger's proofs of the receivable's events (qilian-proof/1)"},
        409: {"description": "the ledger has not recorded any event of it yet"},
        503: {"description": "the ledger could not be reached"},
    },
)
async def get_proof(
    receivable_id: str,
    principal: CurrentPrincipal,
    session: Session,
    client: Ledger,
    latest: Annotated[bool, Query(description="only the newest event")] = False,
) -> Any:
    """Every event's proof bundle (or only the newest), exactly as the ledger serves them
    (parties and auditors)."""
    row = await service.get_visible(session, principal, receivable_id, auditors=True)
    try:
        answer = await client.receivable_proofs(row.id, latest=latest)
    except ledger.LedgerUnavailable:
        raise ServiceUnavailable("the ledger cannot be reached; try again later") from None
    if answer.status_code == 200:
        return JSONResponse(answer.body)
    if answer.status_code == 404:
        problem = NotAnchoredYet("the ledger has not recorded this receivable's events yet")
        return problem_response(
            problem.to_problem(f"/v1/receivables/{receivable_id}/proof"),
            headers={"Retry-After": "5"},
        )
    raise ServiceUnavailable(f"the ledger answered {answer.status_code}")
