"""HTTP side of risk sharing: guarantee programmes, the risk compensation pool (top-ups,
recoveries, state, ledger verification), claims; the regulator's cluster indicators and early
warnings. The rules live in :mod:`services.api.risk.service`, :mod:`~services.api.risk.stats`
and :mod:`~services.api.risk.alerts`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from qilian.kit.money import MINOR_UNITS
from services.api.auth.dependencies import Session, require_roles
from services.api.auth.models import Principal
from services.api.auth.pagination import Cursor, Limit, Page, paginate
from services.api.organizations.models import Role
from services.api.risk import alerts, ledger, service, stats
from services.api.risk.models import Alert, ClaimState, GuaranteeProgramme, RiskClaim
from services.api.risk.schemas import (
    AlertPublic,
    ClaimPaymentCreate,
    ClaimPublic,
    PoolPublic,
    ProgrammeCreate,
    ProgrammePublic,
    RecoveryCreate,
    TopUpCreate,
    TopUpPublic,
    VerificationPublic,
)

programmes_router = APIRouter(prefix="/v1/guarantee-programmes", tags=["risk sharing"])
pool_router = APIRouter(prefix="/v1/risk-pool", tags=["risk sharing"])
claims_router = APIRouter(prefix="/v1/risk-claims", tags=["risk sharing"])
stats_router = APIRouter(prefix="/v1/stats", tags=["supervision"])
alerts_router = APIRouter(prefix="/v1/alerts", tags=["supervision"])

MAX_MONTHS = 36

Guarantor = Annotated[Principal, Depends(require_roles(Role.guarantor))]
Anyone = Annotated[Principal, Depends(require_roles(*Role))]
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
Supervisor = Annotated[Principal, Depends(require_roles(Role.regulator, Role.operator))]
LedgerReader = Annotated[
    Principal, Depends(require_roles(Role.regulator, Role.operator, Role.auditor))
]
ClaimReader = Annotated[
    Principal,
    Depends(require_roles(Role.regulator, Role.operator, Role.bank, Role.guarantor)),
]


@programmes_router.post("", status_code=201, response_model=ProgrammePublic)
async def create_programme(
    body: ProgrammeCreate, principal: Guarantor, session: Session, response: Response
) -> ProgrammePublic:
    """A guarantor opens a programme: eligibility, fee rate, and loss shares summing to 1."""
    if body.max_amount is not None and body.max_amount.currency != body.currency:
        raise service.field_error("max_amount.currency", f"the programme is in {body.currency}")
    programme = await service.create_programme(session, principal, body.terms())
    response.headers["Location"] = f"/v1/guarantee-programmes/{programme.id}"
    return ProgrammePublic.of(programme)


@programmes_router.get("", response_model=Page[ProgrammePublic])
async def list_programmes(
    _: Anyone,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    guarantor_id: Annotated[str | None, Query(max_length=40)] = None,
    active: bool | None = None,
) -> Page[ProgrammePublic]:
    """Every programme (public terms: a supplier chooses one, a bank prices it)."""
    query = service.list_programmes_query(guarantor_id, active)
    rows, next_cursor = await paginate(session, query, GuaranteeProgramme.id, limit, cursor)
    return Page[ProgrammePublic](
        items=[ProgrammePublic.of(r) for r in rows], next_cursor=next_cursor
    )


@programmes_router.get("/{programme_id}", response_model=ProgrammePublic)
async def get_programme(programme_id: str, _: Anyone, session: Session) -> ProgrammePublic:
    return ProgrammePublic.of(await service.get_programme(session, programme_id))


def _currency(value: str) -> str:
    if value not in MINOR_UNITS:
        raise service.field_error("currency", f"unsupported currency {value!r}", "query")
    return value


@pool_router.get("", response_model=PoolPublic)
async def get_pool(
    _: Supervisor, session: Session, currency: Annotated[str, Query(max_length=3)] = "CNY"
) -> PoolPublic:
    """The pool in one currency: balance, exposure on live covers, queued claims."""
    return PoolPublic.of(await service.pool_state(session, _currency(currency)))


@pool_router.post("/top-ups", status_code=201, response_model=TopUpPublic)
async def top_up(body: TopUpCreate, principal: Operator, session: Session) -> TopUpPublic:
    """The operator records government money paid into the pool; queued claims are then paid
    in order while the balance covers them."""
    amount = body.amount.to_money()
    _, paid = await service.top_up(session, principal, amount, body.reference)
    state = await service.pool_state(session, amount.currency)
    return TopUpPublic(pool=PoolPublic.of(state), claims_paid=[service.claim_json(c) for c in paid])


@pool_router.post("/recoveries", status_code=201, response_model=ClaimPublic)
async def record_recovery(
    body: RecoveryCreate, principal: Operator, session: Session
) -> ClaimPublic:
    """Money recovered on a defaulted financing returns to the pool (at most what it paid)."""
    claim = await service.record_recovery(
        session, principal, body.claim_id, body.amount.to_money(), body.reference
    )
    return ClaimPublic.of(claim)


@pool_router.get("/ledger/verify", response_model=VerificationPublic)
async def verify_ledger(_: LedgerReader, session: Session) -> VerificationPublic:
    """Recompute the ledger: the hash chain, each entry's balance, every account's balance."""
    result = await ledger.verify(session)
    return VerificationPublic(
        ok=result.ok,
        entries=result.entries,
        accounts=result.accounts,
        head_hash=result.head_hash,
        problems=result.problems,
    )


@claims_router.get("", response_model=Page[ClaimPublic])
async def list_claims(
    principal: ClaimReader,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    state: Annotated[ClaimState | None, Query()] = None,
) -> Page[ClaimPublic]:
    """Regulator and operator: every claim; a bank: the claims owed to it; a guarantor: its
    own."""
    query = service.claims_query(principal, state)
    rows, next_cursor = await paginate(session, query, RiskClaim.id, limit, cursor)
    return Page[ClaimPublic](items=[ClaimPublic.of(c) for c in rows], next_cursor=next_cursor)


@claims_router.post("/{claim_id}/payment", response_model=ClaimPublic)
async def record_claim_payment(
    claim_id: str, body: ClaimPaymentCreate, principal: Guarantor, session: Session
) -> ClaimPublic:
    """The guarantor that owes a ``raised`` claim records paying it to the bank: the amount is
    the claim's open amount exactly; the claim becomes ``paid`` with its ledger entry."""
    claim = await service.record_claim_payment(
        session, principal, claim_id, body.amount.to_money(), body.reference
    )
    return ClaimPublic.of(claim)


def _month(value: str | None, name: str, default: date) -> date:
    if value is None:
        return default
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise service.field_error(name, "a month as YYYY-MM", "query") from None


@stats_router.get(
    "/clusters",
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV when asked"}},
)
async def cluster_stats(
    request: Request,
    _: Supervisor,
    session: Session,
    currency: Annotated[str, Query(max_length=3)] = "CNY",
    from_: Annotated[str | None, Query(alias="from", description="first month, YYYY-MM")] = None,
    to: Annotated[str | None, Query(description="last month, YYYY-MM (default: this one)")] = None,
    core_firm_id: Annotated[
        list[str] | None, Query(description="narrow to these debtor core firms (drill-down)")
    ] = None,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
) -> Any:
    """Per-cluster indicators: a snapshot of now and monthly series (default: the last six
    months). ``?format=csv`` or ``Accept: text/csv`` for CSV."""
    last = _month(to, "to", service.today().replace(day=1))
    first_default = stats.months(date(last.year - 1, last.month, 1), last)[-6]
    first = _month(from_, "from", first_default)
    if first > last:
        raise service.field_error("from", "from is after to", "query")
    if len(stats.months(first, last)) > MAX_MONTHS:
        raise service.field_error("from", f"at most {MAX_MONTHS} months", "query")
    scope = stats.Scope(_currency(currency), first, last, core_firm_id)
    report = await stats.cluster_indicators(session, scope)
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if wants_csv:
        return Response(
            stats.to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="cluster-stats.csv"'},
        )
    return report


@alerts_router.get("", response_model=Page[AlertPublic])
async def list_alerts(
    _: Supervisor,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    rule: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[AlertPublic]:
    """Early warnings, each with the facts that raised it (oldest first)."""
    query = alerts.list_query(rule)
    rows, next_cursor = await paginate(session, query, Alert.id, limit, cursor)
    return Page[AlertPublic](items=[AlertPublic.of(a) for a in rows], next_cursor=next_cursor)
