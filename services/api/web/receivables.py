"""Pages of receivables for their parties: the table (every state axis, the anchoring badge), one
receivable with its events and the forms its party may use, and the lineage tree (多级穿透).

Reads go through the receivables domain (``service.get_visible``, ``repository.list_query``,
``lifecycle.lineage``): a page shows exactly what ``GET /v1/receivables…`` would, and another
organisation's receivable is the 404 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit.errors import InvalidInput, NotFound, QilianError
from services.api.auth.dependencies import Session
from services.api.auth.models import Principal
from services.api.auth.pagination import paginate
from services.api.organizations.models import Organization, Role
from services.api.receivables import ledger, lifecycle, repository, service
from services.api.receivables.models import (
    Confirmation,
    Dispute,
    Financing,
    Holding,
    Receivable,
    Settlement,
)
from services.api.receivables.router import ledger_client
from services.api.receivables.schemas import ReceivablePublic
from services.api.web import repository as web_repository
from services.api.web.rendering import FormErrors, PageRoute, from_validation, render
from services.api.web.session import PagePrincipal

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
AXES: dict[str, type[StrEnum]] = {
    "confirmation": Confirmation,
    "holding": Holding,
    "financing": Financing,
    "settlement": Settlement,
    "dispute": Dispute,
}
PARTIES = ("creditor", "holder", "debtor")
E = TypeVar("E", bound=StrEnum)


def _choice(kind: type[E], value: str | None, name: str) -> E | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(
            f"{name}: unknown value {value!r}",
            errors=[{"field": name, "in": "query", "message": "unknown value"}],
        ) from None


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: not a date (YYYY-MM-DD)") from None


@router.get("/receivables", response_class=HTMLResponse)
async def receivables(request: Request, principal: PagePrincipal, session: Session) -> Any:
    """The organisation's receivables (as in ``GET /v1/receivables``), filtered on every axis."""
    params = request.query_params
    party = params.get("as") or None
    if party is not None and party not in PARTIES:
        raise InvalidInput(f"as: unknown party {party!r}")
    filters = {axis: _choice(kind, params.get(axis), axis) for axis, kind in AXES.items()}
    query = repository.list_query(
        principal.organization_id,
        as_party=party,
        due_from=_day(params.get("due_from"), "due_from"),
        due_to=_day(params.get("due_to"), "due_to"),
        **{axis: value.value if value else None for axis, value in filters.items()},
    )
    rows, next_cursor = await paginate(
        session, query, Receivable.id, PAGE_SIZE, params.get("cursor") or None
    )
    names = await web_repository.names(
        session, [i for r in rows for i in (r.creditor_id, r.holder_id, r.debtor_id)]
    )
    next_params = {k: v for k, v in params.items() if k not in ("cursor", "lang")}
    return render(
        request,
        "receivables.html",
        rows=[ReceivablePublic.of(r) for r in rows],
        anchor_query=urlencode([("id", r.id) for r in rows]),
        names=names,
        axes={axis: [v.value for v in kind] for axis, kind in AXES.items()},
        selected={k: params.get(k, "") for k in (*AXES, "as", "due_from", "due_to")},
        parties=PARTIES,
        next_cursor=next_cursor,
        next_params=next_params,
    )


@router.get("/anchoring/receivables", response_class=HTMLResponse)
async def anchoring_badges(
    request: Request,
    principal: PagePrincipal,
    session: Session,
    receivable_ids: Annotated[list[str], Query(alias="id", min_length=1, max_length=PAGE_SIZE)],
) -> Any:
    """The anchoring badges of a table's rows in one answer (loaded by htmx after the table):
    one query for the events, one ledger call, each badge an out-of-band swap into its row.
    A receivable the organisation is not a party to is the 404 page."""
    wanted = list(dict.fromkeys(receivable_ids))
    visible = await repository.visible_ids(session, wanted, principal.organization_id)
    for rid in wanted:
        if rid not in visible:
            raise NotFound(f"there is no receivable {rid}")
    events = await repository.events_of_many(session, wanted)
    answers = await ledger.anchoring_many(ledger_client(request), events)
    return render(request, "_anchor_badges.html", badges=[(rid, answers[rid][0]) for rid in wanted])


async def detail_context(
    request: Request, session: AsyncSession, principal: Principal, receivable_id: str
) -> dict[str, Any]:
    row = await service.get_visible(session, principal, receivable_id)
    events = await repository.events(session, row.id)
    status, anchoring = await ledger.anchoring(
        ledger_client(request), row.id, [(e.event_id, e.seq) for e in events]
    )
    by_event = {a.event_id: a for a in anchoring}
    org = principal.organization_id
    names = await web_repository.names(
        session, [row.creditor_id, row.holder_id, row.debtor_id, *(e.actor for e in events)]
    )
    context: dict[str, Any] = {
        "r": ReceivablePublic.of(row),
        "events": [(e, by_event.get(e.event_id)) for e in events],
        "anchor_status": status,
        "names": names,
        "is_holder": row.holder_id == org,
        "is_debtor": row.debtor_id == org,
        "is_creditor": row.creditor_id == org,
        "suppliers": [],
        "signing_address": None,
        "payments": [],
    }
    if principal.role == Role.supplier and row.holder_id == org:
        context["suppliers"] = await web_repository.suppliers(session, org)
    if principal.role == Role.core_firm and row.debtor_id == org:
        debtor = await session.get(Organization, row.debtor_id)
        context["signing_address"] = debtor.signing_address if debtor else None
        context["payments"] = await lifecycle.payments(session, principal, row.id)
    return context


async def render_detail(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    receivable_id: str,
    *,
    form: str | None = None,
    errors: FormErrors | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The receivable's page; after a refused form, with that form's errors and values."""
    context = await detail_context(request, session, principal, receivable_id)
    return render(
        request,
        "receivable.html",
        status_code,
        **context,
        form=form,
        errors=errors or FormErrors(),
        values=values or {},
        done=request.query_params.get("done"),
    )


Acted = TypeVar("Acted")


async def submit_detail_form(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    receivable_id: str,
    form: str,
    values: dict[str, Any],
    act: Callable[[], Awaitable[Acted]],
    refused: Callable[[QilianError], FormErrors],
    invalid: Callable[[FormErrors], FormErrors] = lambda errors: errors,
) -> Acted | HTMLResponse:
    """Run one form of a receivable's page: ``act`` validates its body and acts, in a savepoint.
    Refused, the page comes back with that form open, its values and its errors — 422 for invalid
    input (``invalid`` may regroup the fields), the problem's status and ``refused``'s errors for
    a domain refusal; a receivable the caller may not see stays the 404 page."""
    try:
        async with session.begin_nested():
            return await act()
    except ValidationError as exc:
        errors, status = invalid(from_validation(exc, request=request)), 422
    except NotFound:
        raise
    except QilianError as exc:
        errors, status = refused(exc), exc.status
    return await render_detail(
        request, session, principal, receivable_id, form=form, errors=errors, values=values,
        status_code=status,
    )  # fmt: skip


@router.get("/receivables/{receivable_id}", response_class=HTMLResponse)
async def receivable(
    receivable_id: str, request: Request, principal: PagePrincipal, session: Session
) -> Any:
    return await render_detail(request, session, principal, receivable_id)


@router.get("/receivables/{receivable_id}/lineage", response_class=HTMLResponse)
async def lineage(
    receivable_id: str, request: Request, principal: PagePrincipal, session: Session
) -> Any:
    """The tree of parts down to tier-N suppliers; the debtor sees all of it (as the API)."""
    root_id, nodes = await lifecycle.lineage(session, principal, receivable_id)
    children: dict[str | None, list[Any]] = {}
    for node in nodes:
        children.setdefault(node.receivable.parent_id, []).append(node)
    names = await web_repository.names(
        session, [n.receivable.holder_id for n in nodes if n.visible]
    )
    roots = [n for n in nodes if n.receivable.id == root_id] or children.get(None, [])
    return render(
        request,
        "lineage.html",
        receivable_id=receivable_id,
        roots=roots,
        children=children,
        names=names,
        public={n.receivable.id: ReceivablePublic.of(n.receivable) for n in nodes if n.visible},
    )
