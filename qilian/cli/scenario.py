"""The demo scenario: a few months of activity across the five clusters, played once after the
demo seed through the domain services (the same code the API runs), so that the regulator's
indicators, the risk pool and the early warnings show something on ``make run``.

What it plays (deterministic: a seeded random generator):

- the guarantor opens two programmes (政银担 50 % guarantor / 20 % bank / 30 % pool for every
  cluster, and a green one for pv and lithium); the operator tops the pool up;
- each supplier uploads invoices on each core firm, issued over the last four months, with the
  core firm's usual terms (the alloy firm asks 90 days: beyond the 60-day policy); most are
  confirmed with the core firm's EIP-712 signature;
- the chemicals firm leaves several invoices unpaid past due: they are marked overdue; some
  past-due invoices of the others are paid;
- one supplier uploads an invoice, then the same invoice three times more (each refused as a
  duplicate, and audited as the API audits a refused write);
- suppliers ask for financing of receivables due later (most under a programme); the three
  demo banks bid; the best offer is accepted; the FinancingRegistry registration runs on the
  chain in this process (the ledger's consumer and sender, as the worker would run them); the
  winning bank confirms the disbursement; one financing is repaid, and two covered ones are
  played forward past their due date and grace period to default, so claims are raised and the
  pool pays its share;
- the early-warning rules are evaluated once.

Dates the platform stamps itself (uploads, confirmations, funding) are today's; the invoices'
issue and due dates spread over the months. The scenario is played once: it is skipped when its
first programme exists already.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit import db
from qilian.kit.errors import QilianError
from qilian.kit.money import Money
from qilian.kit.outbox import Envelope
from qilian.kit.settings import Settings
from qilian.kit.tasks import apply_batch
from services.api.audit import service as audit
from services.api.audit.models import Outcome
from services.api.auth.models import Principal, PrincipalKind, Scope
from services.api.financing import pricing
from services.api.financing import service as financing
from services.api.financing import tasks as financing_tasks
from services.api.financing.models import FinancingRecord, Recourse
from services.api.financing.settings import get_financing_settings
from services.api.invoices import service as intake
from services.api.invoices.blobs import blob_store
from services.api.invoices.settings import get_intake_settings
from services.api.organizations.models import Organization, Role
from services.api.receivables import lifecycle, signatures
from services.api.receivables.models import Receivable
from services.api.risk import alerts
from services.api.risk import service as risk
from services.api.risk.models import GuaranteeProgramme, Party
from services.api.risk.settings import get_risk_settings

log = structlog.get_logger(__name__)

PROGRAMME_NAME = "政银担 Xining SME programme (demo)"
GREEN_PROGRAMME_NAME = "Green supply chain programme (demo)"
TERMS_DAYS = {"pv": 45, "lithium": 60, "alloy": 90, "chemicals": 30, "bio": 45}


@dataclass
class Report:
    invoices: int = 0
    confirmed: int = 0
    duplicates_refused: int = 0
    overdue: int = 0
    paid: int = 0
    financings: int = 0
    funded: int = 0
    defaulted: int = 0
    alerts: int = 0
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


def _principal(org: dict[str, Any]) -> Principal:
    return Principal(
        PrincipalKind.client,
        org["client_id"],
        org["id"],
        Role(org["role"]),
        frozenset(Scope),
    )


def _invoice(seller: dict[str, Any], buyer: dict[str, Any], number: str, **fields: Any) -> bytes:
    return json.dumps(
        {
            "invoice_number": number,
            "currency": "CNY",
            "seller": {"name": seller["name"], "tax_id": seller["tax_id"]},
            "buyer": {"name": buyer["name"], "tax_id": buyer["tax_id"]},
            **fields,
        }
    ).encode()


async def _already_played() -> bool:
    async with db.transaction() as session:
        found = await session.execute(
            select(col(GuaranteeProgramme.id)).where(col(GuaranteeProgramme.name) == PROGRAMME_NAME)
        )
        return found.first() is not None


async def _registry_round(settings: Settings) -> None:
    """The FinancingRegistry saga, in this process: the ledger accepts the pending operations,
    sends them to the chain and reports the results; the marketplace applies them."""
    from services.ledger.registry import service as registry_service
    from services.ledger.registry import tasks as registry_tasks

    async def pump(topic: str, handler: Any) -> int:
        async with db.transaction() as session:
            rows = await session.execute(
                text(
                    "SELECT event_id, topic, payload FROM platform.outbox "
                    "WHERE topic = :topic AND delivered_at IS NULL AND dead_at IS NULL ORDER BY id"
                ),
                {"topic": topic},
            )
            envelopes = [Envelope(r.event_id, r.topic, r.payload) for r in rows]
        if envelopes:
            await apply_batch(envelopes, handler)
        return len(envelopes)

    await pump(registry_service.REQUEST_TOPIC, registry_tasks.accept_operation.handler)
    for _ in range(20):
        report = await registry_tasks.tick(settings)
        if report.error:
            raise RuntimeError(f"FinancingRegistry: {report.error}")
        if not report.sent and not report.done and not report.refused:
            break
    await pump(registry_service.RESULT_TOPIC, financing_tasks.apply_registry_result.handler)


async def play(settings: Settings, organizations: list[dict[str, Any]]) -> Report:
    """Play the scenario once (see the module's docstring)."""
    report = Report()
    if await _already_played():
        report.skipped = True
        return report
    rng = random.Random(20261129)
    by_role: dict[str, list[dict[str, Any]]] = {}
    for org in organizations:
        by_role.setdefault(org["role"], []).append(org)
    cores = {org["cluster"]: org for org in by_role["core_firm"]}
    suppliers, banks = by_role["supplier"], by_role["bank"]
    guarantor, operator = by_role["guarantor"][0], by_role["operator"][0]
    anchor = settings.anchor_address
    if not anchor:
        from services.ledger.deployments import service as deployments

        async with db.transaction() as session:
            anchor = (await deployments.addresses(session, settings)).get("ReceivableAnchor")
    domain = signatures.Domain(settings.chain_id, str(anchor))

    async def domain_source() -> signatures.Domain:
        return domain

    store = blob_store(settings, get_intake_settings())
    config = get_intake_settings()
    today = datetime.now(UTC).date()

    # programmes and the pool
    async with db.transaction() as session:
        main = await risk.create_programme(
            session,
            _principal(guarantor),
            risk.ProgrammeTerms(
                name=PROGRAMME_NAME,
                currency="CNY",
                max_amount=Decimal("2000000"),
                clusters=[],
                green_only=False,
                fee_rate=Decimal("0.01"),
                loss_shares=[
                    risk.LossShare(Party.guarantor, Decimal("0.5")),
                    risk.LossShare(Party.bank, Decimal("0.2")),
                    risk.LossShare(Party.pool, Decimal("0.3")),
                ],
            ),
        )
        green = await risk.create_programme(
            session,
            _principal(guarantor),
            risk.ProgrammeTerms(
                name=GREEN_PROGRAMME_NAME,
                currency="CNY",
                max_amount=None,
                clusters=["pv", "lithium"],
                green_only=True,
                fee_rate=Decimal("0.006"),
                loss_shares=[
                    risk.LossShare(Party.guarantor, Decimal("0.4")),
                    risk.LossShare(Party.bank, Decimal("0.2")),
                    risk.LossShare(Party.pool, Decimal("0.4")),
                ],
            ),
        )
        await risk.top_up(
            session, _principal(operator), Money.of("300000.00", "CNY"), "财政风险补偿资金 2026"
        )

    # invoices over four months, confirmed with signatures; some overdue, some paid
    financeable: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    past_due: list[tuple[dict[str, Any], str, int]] = []
    for cluster, core in sorted(cores.items()):
        for supplier in suppliers:
            for n in range(4):
                issued = today - timedelta(days=rng.randint(5, 120))
                due = issued + timedelta(days=TERMS_DAYS[cluster])
                amount = Decimal(rng.randint(20_000, 400_000)) + Decimal(rng.randint(0, 99)) / 100
                number = f"DEMO-{cluster.upper()}-{supplier['tax_id'][-6:]}-{n + 1:02d}"
                data = _invoice(
                    supplier,
                    core,
                    number,
                    issue_date=issued.isoformat(),
                    due_date=due.isoformat(),
                    total_amount=str(amount),
                    payable_amount=str(amount),
                )
                async with db.transaction() as session:
                    uploader = intake.Uploader(
                        await _org(session, supplier["id"]), audit.Actor.of(_principal(supplier))
                    )
                    result = await intake.intake(
                        session,
                        uploader,
                        data,
                        store=store,
                        config=config,
                        content_type="application/json",
                    )
                report.invoices += 1
                rid = result.receivable.id
                if rng.random() < 0.1:
                    continue  # left pending in the core firm's queue
                async with db.transaction() as session:
                    row = await session.get(Receivable, rid)
                    assert row is not None
                    typed = signatures.typed_data(row, domain)
                    signature = signatures.sign(typed, core["signing_key"])
                    await lifecycle.confirm(
                        session, _principal(core), rid, signature, domain_source
                    )
                report.confirmed += 1
                if due < today:
                    past_due.append((core, rid, int(amount * 100)))
                elif due >= today + timedelta(days=10):
                    financeable.append((supplier, core, rid))

    # past due: the chemicals firm does not pay; the others pay most
    for core, rid, minor in past_due:
        if core["cluster"] == "chemicals" or rng.random() < 0.2:
            continue
        async with db.transaction() as session:
            await lifecycle.record_payment(
                session,
                _principal(core),
                rid,
                Money(minor, "CNY").amount,
                today,
                f"PAY-{rid[-8:]}",
                True,
            )
        report.paid += 1
    async with db.transaction() as session:
        report.overdue = len(await lifecycle.mark_overdue(session, today, 0))

    # one supplier tries the same invoice again, three times
    noisy, core = suppliers[-1], cores["bio"]
    again = _invoice(
        noisy,
        core,
        f"DEMO-BIO-{noisy['tax_id'][-6:]}-AGAIN",
        issue_date=(today - timedelta(days=30)).isoformat(),
        due_date=(today + timedelta(days=15)).isoformat(),
        total_amount="88000.00",
        payable_amount="88000.00",
    )
    for _ in range(4):  # accepted once, then refused three times
        try:
            async with db.transaction() as session:
                uploader = intake.Uploader(
                    await _org(session, noisy["id"]), audit.Actor.of(_principal(noisy))
                )
                await intake.intake(
                    session,
                    uploader,
                    again,
                    store=store,
                    config=config,
                    content_type="application/json",
                )
        except intake.DuplicateInvoice:
            async with db.transaction() as session:  # as the API audits a refused write
                await audit.append(
                    session,
                    _principal(noisy),
                    "request.refused",
                    outcome=Outcome.failure,
                    details={"method": "POST", "path": "/v1/invoices", "status": 409},
                )
            report.duplicates_refused += 1

    # financing: requests, bids, acceptance, registration on chain, funding
    fin_settings = get_financing_settings()
    accepted: list[str] = []
    rng.shuffle(financeable)
    for supplier, core, rid in financeable[:12]:
        supplier_org = await _org_of(supplier["id"])
        programme = (
            green.id if supplier_org.green and core["cluster"] in ("pv", "lithium") else main.id
        )
        try:
            async with db.transaction() as session:
                request, _ = await financing.create_request(
                    session,
                    _principal(supplier),
                    [rid],
                    datetime.now(UTC) + timedelta(seconds=fin_settings.min_auction_seconds + 60),
                    None,
                    Recourse.any,
                    fin_settings,
                    programme_id=programme if rng.random() < 0.8 else None,
                )
            offers = []
            for i, bank in enumerate(banks):
                async with db.transaction() as session:
                    offer, _ = await financing.place_offer(
                        session,
                        _principal(bank),
                        request.id,
                        financing.OfferTerms(
                            advance_rate=Decimal("0.80") + Decimal(rng.randint(0, 15)) / 100,
                            annual_rate=Decimal("0.035") + Decimal(rng.randint(0, 40)) / 1000,
                            fee=Decimal(rng.randint(0, 500)),
                            fee_currency="CNY",
                            day_count=pricing.DayCount("ACT/360" if i % 2 else "ACT/365"),
                            recourse=bool(i % 2),
                            expires_at=None,
                        ),
                        fin_settings,
                    )
                    offers.append(offer)
            async with db.transaction() as session:
                ranked = financing.rank(request, offers, today)
                best = ranked[0].offer
                record = await financing.accept_offer(
                    session, _principal(supplier), best.id, fin_settings
                )
                accepted.append(record.id)
            report.financings += 1
        except QilianError as exc:  # e.g. the request window does not fit the due date
            report.notes.append(f"{rid}: {exc}")
    await _registry_round(settings)
    funded: list[FinancingRecord] = []
    for financing_id in accepted:
        async with db.transaction() as session:
            found = await session.get(FinancingRecord, financing_id)
            assert found is not None
            if found.state != "awaiting_disbursement":
                report.notes.append(f"{financing_id} is {found.state}")
                continue
            bank = next(b for b in banks if b["id"] == found.bank_id)
            funded.append(
                await financing.record_disbursement(
                    session, _principal(bank), financing_id, f"WIRE-{financing_id[-8:]}", None
                )
            )
            report.funded += 1

    # one repaid; two covered financings played forward to their default
    covered = [f for f in funded if await _covered(f.id)]
    if funded:
        first = funded[0]
        async with db.transaction() as session:
            for item in await financing.items_of(session, first.request_id):
                receivable_id = item.receivable_id
                row = await session.get(Receivable, receivable_id)
                assert row is not None
                core = next(c for c in cores.values() if c["id"] == row.debtor_id)
                await lifecycle.record_payment(
                    session,
                    _principal(core),
                    receivable_id,
                    Money(row.open_amount_minor, "CNY").amount,
                    today,
                    f"PAY-{receivable_id[-8:]}",
                    True,
                )
        async with db.transaction() as session:
            await financing.settle(session, first.id, today)
    grace = fin_settings.default_grace_days
    for record in [f for f in covered if f is not (funded[0] if funded else None)][:2]:
        async with db.transaction() as session:
            if await financing.settle(
                session, record.id, record.due_date + timedelta(days=grace + 1)
            ):
                report.defaulted += 1

    # the early warnings, once now (beat evaluates them every minute afterwards)
    risk_settings = get_risk_settings()
    at = datetime.now(UTC)
    async with db.transaction() as session:
        findings = await alerts.evaluate(session, risk_settings, at)
    for finding in findings:
        async with db.transaction() as session:
            if await alerts.raise_alert(session, finding, at):
                report.alerts += 1
    log.info("demo_scenario_played", **{k: v for k, v in vars(report).items() if k != "notes"})
    return report


async def _org(session: AsyncSession, organization_id: str) -> Organization:
    org = await session.get(Organization, organization_id)
    assert org is not None
    return org


async def _org_of(organization_id: str) -> Organization:
    async with db.transaction() as session:
        return await _org(session, organization_id)


async def _covered(financing_id: str) -> bool:
    async with db.transaction() as session:
        return await risk.cover_view(session, financing_id) is not None
