"""Shared by the risk tests: parties with a cluster and a green flag, guarantee programmes, and
covered financings taken through the marketplace's public API up to funding and default."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from qilian.kit import db
from services.api.audit import service as audit
from services.api.auth import service as auth_service
from services.api.financing import tasks as financing_tasks
from services.api.financing.settings import FinancingSettings
from services.api.organizations import service as org_service
from services.api.organizations.models import Cluster, OrganizationBase, Role
from services.api.receivables.tasks import sweep_overdue
from tests.integration.auth.conftest import Org
from tests.integration.financing.market import (
    DUE,
    ISSUED,
    Market,
    accept,
    offer,
    open_request,
    registry_answers,
)
from tests.integration.invoices.intake_helpers import Party, random_vat
from tests.integration.receivables.lifecycle_helpers import call, confirmed


async def party(role: Role, *, cluster: Cluster | None = None, green: bool = False) -> Party:
    tax_id = random_vat()
    name = f"{role.value} {uuid.uuid4().hex[:6]}"
    async with db.transaction() as session:
        org = await org_service.register(
            session,
            OrganizationBase(
                name=name,
                role=role,
                tax_id=tax_id,
                tax_scheme=f"TEST-{uuid.uuid4().hex[:8]}",
                cluster=cluster if role == Role.core_firm else None,
                green=green,
            ),
        )
        issued = await auth_service.issue_client(session, audit.SYSTEM, org.id)
    return Party(Org(org.id, role, issued.client_id, issued.client_secret), tax_id, name)


@dataclass
class World:
    supplier: Party  # green
    brown_supplier: Party  # not green
    core: Party  # cluster pv
    alloy_core: Party  # cluster alloy
    banks: list[Party]
    guarantor: Party
    reguarantor: Party  # a second guarantor, the "other" party of a programme
    operator: Party
    regulator: Party
    extra: dict[str, Any] = field(default_factory=dict)

    def market(self, supplier: Party | None = None, core: Party | None = None) -> Market:
        return Market(
            supplier=supplier or self.supplier,
            other_supplier=self.brown_supplier,
            core=core or self.core,
            banks=self.banks,
        )


async def new_world() -> World:
    return World(
        supplier=await party(Role.supplier, green=True),
        brown_supplier=await party(Role.supplier),
        core=await party(Role.core_firm, cluster=Cluster.pv),
        alloy_core=await party(Role.core_firm, cluster=Cluster.alloy),
        banks=[await party(Role.bank) for _ in range(2)],
        guarantor=await party(Role.guarantor),
        reguarantor=await party(Role.guarantor),
        operator=await party(Role.operator),
        regulator=await party(Role.regulator),
        extra={"auditor": await party(Role.auditor)},
    )


def shares_4222(world: World) -> list[dict[str, Any]]:
    """政银担 4:2:2:2 — guarantor 40 %, bank 20 %, pool 20 %, a re-guarantor 20 %."""
    return [
        {"party": "guarantor", "share": "0.4"},
        {"party": "bank", "share": "0.2"},
        {"party": "pool", "share": "0.2"},
        {"party": "other", "share": "0.2", "organization_id": world.reguarantor.org.id},
    ]


async def create_programme(http: httpx.AsyncClient, world: World, **body: Any) -> httpx.Response:
    document = {
        "name": f"programme {uuid.uuid4().hex[:6]}",
        "currency": "EUR",
        "fee_rate": "0.015",
        "loss_shares": shares_4222(world),
        **body,
    }
    return await call(http, world.guarantor, "POST", "/v1/guarantee-programmes", document)


async def programme(http: httpx.AsyncClient, world: World, **body: Any) -> dict[str, Any]:
    response = await create_programme(http, world, **body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def receivable(
    http: httpx.AsyncClient,
    world: World,
    payable: str,
    currency: str = "EUR",
    *,
    supplier: Party | None = None,
    core: Party | None = None,
    due: str = DUE,
) -> str:
    return await confirmed(
        http,
        supplier or world.supplier,
        core or world.core,
        payable=payable,
        issue=ISSUED,
        due=due,
        currency=currency,
    )


async def funded(
    http: httpx.AsyncClient,
    world: World,
    programme_id: str | None,
    payable: str,
    currency: str = "EUR",
    *,
    advance: str = "0.90",
    bank: int = 0,
    supplier: Party | None = None,
    core: Party | None = None,
) -> tuple[dict[str, Any], str]:
    """A financing of one new receivable, accepted, registered and funded: (financing, rid)."""
    market = world.market(supplier, core)
    rid = await receivable(http, world, payable, currency, supplier=supplier, core=core)
    extra: dict[str, Any] = {"programme_id": programme_id} if programme_id else {}
    request = await open_request(http, market, [rid], **extra)
    bid = await offer(
        http, world.banks[bank], request["id"], advance=advance, currency=currency, fee="5.00"
    )
    accepted = await accept(http, market, bid["id"])
    assert accepted.status_code == 201, accepted.text
    financing: dict[str, Any] = accepted.json()
    await registry_answers(financing["id"])
    paid_out = await call(
        http,
        world.banks[bank],
        "POST",
        f"/v1/financings/{financing['id']}/disbursement",
        {"reference": "WIRE"},
    )
    assert paid_out.status_code == 200, paid_out.text
    return paid_out.json(), rid


async def pay(
    http: httpx.AsyncClient, world: World, rid: str, amount: str, core: Party | None = None
) -> None:
    response = await call(
        http,
        core or world.core,
        "POST",
        f"/v1/receivables/{rid}/payments",
        {"amount": amount, "paid_at": DUE, "reference": f"PAY-{uuid.uuid4().hex[:6]}"},
    )
    assert response.status_code == 201, response.text


async def run_to_default() -> None:
    """Past the due date and the grace period: the timers declare the unpaid financings
    defaulted (and their covers' claims are raised)."""
    due = date.fromisoformat(DUE)
    grace = FinancingSettings().default_grace_days
    await sweep_overdue(due + timedelta(days=1), grace_days=0)
    await financing_tasks.run_timers(on=due + timedelta(days=grace + 1))


async def financing_of(http: httpx.AsyncClient, who: Party, financing_id: str) -> dict[str, Any]:
    response = await call(http, who, "GET", f"/v1/financings/{financing_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def claim_paid_events(bank_id: str) -> dict[str, dict[str, Any]]:
    """The ``risk_claim.paid`` webhook events queued for the bank's endpoints, by claim id."""
    async with db.transaction() as session:
        payloads = (
            await session.execute(
                text(
                    "SELECT payload FROM platform.webhook_messages"
                    " WHERE organization_id = :b AND event_type = 'risk_claim.paid'"
                ),
                {"b": bank_id},
            )
        ).scalars()
        events = [json.loads(p)["data"] for p in payloads]
    return {e["claim_id"]: e for e in events}
