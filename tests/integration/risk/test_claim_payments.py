"""A guarantor records paying its claim (``POST /v1/risk-claims/{id}/payment``): exactly the open
amount, one balanced ledger entry, the claim ``paid``; the refusals name the field (422), the
claim's state (409) or nothing at all (404); two concurrent payments pay once; a replayed
``Idempotency-Key`` answers the same and pays once; the bank owed hears ``risk_claim.paid``."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from qilian.kit import db
from services.api.risk import ledger
from services.api.risk.models import EntryKind
from tests.integration.invoices.intake_helpers import Party, token
from tests.integration.receivables.lifecycle_helpers import call
from tests.integration.risk.helpers import (
    World,
    claim_paid_events,
    financing_of,
    funded,
    programme,
    run_to_default,
    shares_4222,
)
from tests.integration.risk.helpers import pay as repay

CURRENCY = "EUR"


async def defaulted_claims(
    http: httpx.AsyncClient, world: World, payable: str = "1000.03", currency: str = CURRENCY
) -> dict[str, dict[str, Any]]:
    """A 4:2:2:2 covered financing of ``payable`` (advance 90 %) defaulted with nothing repaid:
    its claims by party."""
    p = await programme(http, world, currency=currency, loss_shares=shares_4222(world))
    financing, _ = await funded(http, world, p["id"], payable, currency)
    await run_to_default()
    seen = await financing_of(http, world.banks[0], financing["id"])
    assert seen["state"] == "defaulted"
    return {c["party"]: c for c in seen["guarantee"]["claims"]}


async def pay(
    http: httpx.AsyncClient,
    who: Party,
    claim_id: str,
    amount: str | None,
    currency: str = CURRENCY,
    reference: Any = "HX-2026-0042",
    key: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {}
    if amount is not None:
        body["amount"] = {"amount": amount, "currency": currency}
    if reference is not None:
        body["reference"] = reference
    headers = await token(http, who)
    if key is not None:
        headers = headers | {"Idempotency-Key": key}
    return await http.post(f"/v1/risk-claims/{claim_id}/payment", json=body, headers=headers)


async def payment_entries(claim_id: str) -> list[tuple[Any, ...]]:
    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT e.id, e.kind, e.actor, e.memo, l.account_id, l.debit_minor, "
                "l.credit_minor FROM platform.risk_ledger_entries e "
                "JOIN platform.risk_ledger_lines l ON l.entry_id = e.id "
                "WHERE e.claim_id = :c ORDER BY e.seq, l.line"
            ),
            {"c": claim_id},
        )
        return [tuple(r) for r in rows]


async def verify(http: httpx.AsyncClient, world: World) -> dict[str, Any]:
    response = await call(http, world.regulator, "GET", "/v1/risk-pool/ledger/verify")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_the_guarantor_pays_its_claim_exactly_and_the_ledger_balances(http, world):
    claims = await defaulted_claims(http, world)
    mine = claims["guarantor"]
    # advance 1000.03 × 0.9 = 900.027 → 900.03; 0.4 × 90 003 = 36 001.2 → 36 001 (largest
    # remainder gives the two spare fen to the bank's and the pool's 0.6)
    assert mine["amount"] == {"amount": "360.01", "currency": "EUR"}
    assert mine["state"] == "raised"
    assert mine["payment_entry_id"] is None

    paid = await pay(http, world.guarantor, mine["id"], "360.01", reference="  HX-2026-0042 ")
    assert paid.status_code == 200, paid.text
    claim = paid.json()
    assert claim["id"] == mine["id"]
    assert claim["state"] == "paid"
    assert claim["paid_at"] is not None
    assert claim["payment_reference"] == "HX-2026-0042"  # trimmed
    assert claim["amount"] == mine["amount"]
    entry_id = claim["payment_entry_id"]
    assert entry_id is not None

    rows = await payment_entries(mine["id"])
    g = world.guarantor.org.id
    assert rows == [
        (entry_id, "guarantor_payment", g, "HX-2026-0042", f"claims_payable:{g}:EUR", 36001, 0),
        (entry_id, "guarantor_payment", g, "HX-2026-0042", f"guarantor_payments:{g}:EUR", 0, 36001),
    ]
    async with db.transaction() as session:
        balances: dict[str, int] = dict(
            (
                await session.execute(
                    text(
                        "SELECT id, balance_minor FROM platform.risk_accounts "
                        "WHERE organization_id = :g"
                    ),
                    {"g": g},
                )
            ).all()
        )
        audited = (
            await session.execute(
                text(
                    "SELECT organization_id, details FROM platform.audit_log "
                    "WHERE action = 'risk_claim.paid' AND object_id = :c"
                ),
                {"c": mine["id"]},
            )
        ).all()
    assert balances[f"claims_payable:{g}:EUR"] == 0  # owed 360.01, paid 360.01
    assert balances[f"guarantor_payments:{g}:EUR"] == -36001
    assert [(a.organization_id, a.details["reference"]) for a in audited] == [(g, "HX-2026-0042")]
    assert (await verify(http, world))["ok"] is True

    # the bank owed and the guarantor see it paid; the others' claims are untouched
    listed = await call(http, world.banks[0], "GET", "/v1/risk-claims?state=paid")
    assert mine["id"] in {c["id"] for c in listed.json()["items"]}
    after = await financing_of(http, world.guarantor, claim["financing_id"])
    states = {c["party"]: c["state"] for c in after["guarantee"]["claims"]}
    assert states["guarantor"] == "paid"
    assert states["other"] == "raised"


async def test_the_re_guarantor_pays_its_own_share_and_the_bank_hears_of_it(http, world):
    claims = await defaulted_claims(http, world)
    theirs = claims["other"]
    endpoint = await call(
        http,
        world.banks[0],
        "POST",
        "/v1/webhook-endpoints",
        {"url": "http://127.0.0.1:9/hook", "event_types": ["risk_claim.*"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    paid = await pay(http, world.reguarantor, theirs["id"], theirs["amount"]["amount"])
    assert paid.status_code == 200, paid.text
    # the pool's claim, paid at the default if the pool had the money, is heard of too
    data = (await claim_paid_events(world.banks[0].org.id))[theirs["id"]]
    assert data["claim_id"] == theirs["id"]
    assert data["organization_id"] == world.reguarantor.org.id
    assert data["amount"] == theirs["amount"]
    assert data["reference"] == "HX-2026-0042"


async def test_anything_but_the_open_amount_is_422_naming_the_field(http, world):
    claims = await defaulted_claims(http, world)
    mine = claims["guarantor"]["id"]
    for amount, currency, field in [
        ("360.00", "EUR", "amount.amount"),
        ("360.02", "EUR", "amount.amount"),
        ("0.00", "EUR", "amount.amount"),
        ("360.01", "USD", "amount.currency"),
        ("360.011", "EUR", "amount"),  # more decimals than the currency has: the money object
    ]:
        refused = problem(await pay(http, world.guarantor, mine, amount, currency), 422)
        assert refused["errors"][0]["field"] == field, (amount, currency, refused)
        assert refused["errors"][0]["in"] == "body"
    floats = await http.post(
        f"/v1/risk-claims/{mine}/payment",
        json={"amount": {"amount": 360.01, "currency": "EUR"}, "reference": "X"},
        headers=await token(http, world.guarantor),
    )
    assert problem(floats, 422)["errors"][0]["field"] == "amount.amount"
    for reference in (None, "", "   ", "x" * 201, "HX\x00-1", "HX\n1"):
        answer = await pay(http, world.guarantor, mine, "360.01", reference=reference)
        refused = problem(answer, 422)
        assert refused["errors"][0]["field"] == "reference", reference
    assert problem(await pay(http, world.guarantor, mine, None), 422)["errors"][0]["field"] == (
        "amount"
    )
    assert await payment_entries(mine) == []  # nothing was paid
    ok = await pay(http, world.guarantor, mine, "360.01", reference="x" * 200)
    assert ok.status_code == 200, ok.text


async def test_a_claim_not_raised_is_409_with_its_reason(http, world):
    claims = await defaulted_claims(http, world)
    mine = claims["guarantor"]
    assert (await pay(http, world.guarantor, mine["id"], "360.01")).status_code == 200
    again = problem(await pay(http, world.guarantor, mine["id"], "360.01", reference="AGAIN"), 409)
    assert again["type"] == "https://qilian.dev/problems/claim-state"
    assert (again["state"], again["reason"]) == ("paid", "already_paid")
    assert len({r[0] for r in await payment_entries(mine["id"])}) == 1

    # the covering guarantor sees its financing's other claims, but pays none of them
    bank = problem(await pay(http, world.guarantor, claims["bank"]["id"], "180.01"), 409)
    assert (bank["state"], bank["reason"]) == ("borne", "borne_by_bank")
    pool = problem(await pay(http, world.guarantor, claims["pool"]["id"], "180.01"), 409)
    assert pool["state"] == claims["pool"]["state"]
    assert pool["reason"] == {"queued": "pool_claim", "paid": "already_paid"}[pool["state"]]
    other = problem(await pay(http, world.guarantor, claims["other"]["id"], "180.00"), 403)
    assert other["type"] == "https://qilian.dev/problems/forbidden"


async def test_nobody_else_sees_the_claim(http, world):
    claims = await defaulted_claims(http, world)
    mine = claims["guarantor"]["id"]
    stranger = problem(await pay(http, world.reguarantor, mine, "360.01"), 404)  # another guarantor
    missing = problem(await pay(http, world.guarantor, "clm_nope", "360.01"), 404)
    assert stranger["detail"].replace(mine, "?") == missing["detail"].replace("clm_nope", "?")
    # the pool's claim: the re-guarantor does not cover this financing
    problem(await pay(http, world.reguarantor, claims["pool"]["id"], "180.01"), 404)
    for role_may_never in (world.banks[0], world.banks[1], world.operator, world.regulator):
        problem(await pay(http, role_may_never, mine, "360.01"), 403)
    assert await payment_entries(mine) == []


async def test_two_concurrent_payments_of_a_claim_pay_it_once(http, world):
    claims = await defaulted_claims(http, world)
    # a second claim owed by the same guarantor: its payable account has room for a double
    # payment, so only the claim's row lock (not the account's limit) can stop one
    await defaulted_claims(http, world, payable="2000.00")  # owes 720.00 more
    mine = claims["guarantor"]["id"]
    headers = await token(http, world.guarantor)  # both requests start at once

    async def payment(reference: str) -> httpx.Response:
        body = {"amount": {"amount": "360.01", "currency": CURRENCY}, "reference": reference}
        answer: httpx.Response = await http.post(
            f"/v1/risk-claims/{mine}/payment", json=body, headers=headers
        )
        return answer

    answers = await asyncio.gather(payment("FIRST"), payment("SECOND"))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    assert len({r[0] for r in await payment_entries(mine)}) == 1
    assert (await verify(http, world))["ok"] is True

    # the database holds it too: a second payment entry for the claim, posted past the service
    # (as a bug would), is refused by the unique index on the claim's payment entries
    guarantor = world.guarantor.org.id
    with pytest.raises(IntegrityError, match="uq_risk_ledger_entries_claim_payment"):
        async with db.transaction() as session:
            await ledger.post(
                session,
                EntryKind.guarantor_payment,
                CURRENCY,
                [
                    ledger.debit(ledger.claims_payable("guarantor", guarantor, CURRENCY), 1),
                    ledger.credit(ledger.guarantor_payments(guarantor, CURRENCY), 1),
                ],
                actor=guarantor,
                claim_id=mine,
            )
    assert len({r[0] for r in await payment_entries(mine)}) == 1


async def test_a_replay_with_the_same_idempotency_key_answers_the_same_and_pays_once(http, world):
    claims = await defaulted_claims(http, world)
    mine = claims["guarantor"]["id"]
    key = str(uuid.uuid4())
    first = await pay(http, world.guarantor, mine, "360.01", key=key)
    second = await pay(http, world.guarantor, mine, "360.01", key=key)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len({r[0] for r in await payment_entries(mine)}) == 1
    other_body = await pay(http, world.guarantor, mine, "360.01", reference="OTHER", key=key)
    assert problem(other_body, 422)["idempotency_key"] == key


async def test_a_claim_of_zero_is_paid_with_zero_and_no_entry(http, world):
    shares = [{"party": "pool", "share": "0.5"}, {"party": "guarantor", "share": "0.5"}]
    p = await programme(http, world, currency=CURRENCY, loss_shares=shares)
    financing, rid = await funded(http, world, p["id"], "100.00", CURRENCY)  # advance 90.00
    await repay(http, world, rid, "89.99")  # loss 0.01: the pool's (tie to the earlier share)
    await run_to_default()
    seen = await financing_of(http, world.banks[0], financing["id"])
    mine = next(c for c in seen["guarantee"]["claims"] if c["party"] == "guarantor")
    assert (mine["amount"]["amount"], mine["state"]) == ("0.00", "raised")
    refused = problem(await pay(http, world.guarantor, mine["id"], "0.01"), 422)
    assert refused["errors"][0]["field"] == "amount.amount"
    paid = await pay(http, world.guarantor, mine["id"], "0.00")
    assert paid.status_code == 200, paid.text
    assert (paid.json()["state"], paid.json()["payment_entry_id"]) == ("paid", None)
    assert await payment_entries(mine["id"]) == []
