"""Risk sharing through the API: programmes (validation naming fields), eligibility of a
request, what banks see when pricing, the cover attached at acceptance with its fee entry, and
the claims of covered defaults computed against an independent calculation (``Fraction``), the
pool paying, queueing and paying later in order."""

from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx
from sqlalchemy import text

from qilian.kit import db
from services.api.risk import tasks as risk_tasks
from services.api.risk.settings import RiskSettings
from tests.integration.financing.market import (
    accept,
    closes_in,
    offer,
    open_request,
    registry_answers,
)
from tests.integration.receivables.lifecycle_helpers import call
from tests.integration.risk.helpers import (
    World,
    claim_paid_events,
    create_programme,
    financing_of,
    funded,
    pay,
    programme,
    receivable,
    run_to_default,
    shares_4222,
)


def largest_remainder(loss: int, shares: list[str]) -> list[int]:
    exact = [Fraction(loss) * Fraction(s) for s in shares]
    parts = [e.numerator // e.denominator for e in exact]
    for i in sorted(range(len(shares)), key=lambda i: (parts[i] - exact[i], i))[
        : loss - sum(parts)
    ]:
        parts[i] += 1
    return parts


def minor(money: dict[str, str], exponent: int = 2) -> int:
    value = Decimal(money["amount"]).scaleb(exponent)
    assert value == value.to_integral_value()
    return int(value)


async def pool(http: httpx.AsyncClient, world: World, currency: str) -> Any:
    response = await call(http, world.regulator, "GET", f"/v1/risk-pool?currency={currency}")
    assert response.status_code == 200, response.text
    return response.json()


async def top_up(http: httpx.AsyncClient, world: World, amount: str, currency: str) -> Any:
    response = await call(
        http,
        world.operator,
        "POST",
        "/v1/risk-pool/top-ups",
        {"amount": {"amount": amount, "currency": currency}, "reference": "财政拨款"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def ledger_rows(financing_id: str) -> list[tuple[Any, ...]]:
    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT e.kind, l.account_id, l.debit_minor, l.credit_minor "
                "FROM platform.risk_ledger_entries e JOIN platform.risk_ledger_lines l "
                "ON l.entry_id = e.id WHERE e.financing_id = :f ORDER BY e.seq, l.line"
            ),
            {"f": financing_id},
        )
        return [tuple(r) for r in rows]


# ---------------------------------------------------------------- programmes


async def test_a_guarantor_opens_a_programme_everyone_can_read(http, world):
    created = await programme(
        http, world, clusters=["pv", "alloy"], max_amount={"amount": "50000.00", "currency": "EUR"}
    )
    assert created["guarantor_id"] == world.guarantor.org.id
    assert created["fee_rate"] == "0.015"
    assert [s["share"] for s in created["loss_shares"]] == ["0.4", "0.2", "0.2", "0.2"]
    assert created["max_amount"] == {"amount": "50000.00", "currency": "EUR"}
    for reader in (world.supplier, world.banks[0], world.regulator):
        got = await call(http, reader, "GET", f"/v1/guarantee-programmes/{created['id']}")
        assert got.status_code == 200
        assert got.json() == created
    listed = await call(
        http,
        world.banks[1],
        "GET",
        f"/v1/guarantee-programmes?guarantor_id={world.guarantor.org.id}",
    )
    assert [p["id"] for p in listed.json()["items"]] == [created["id"]]


async def test_loss_shares_must_sum_to_exactly_one_and_the_error_names_the_field(http, world):
    shares = shares_4222(world)
    shares[3]["share"] = "0.1999999999"
    refused = await create_programme(http, world, loss_shares=shares)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "loss_shares"
    assert "0.9999999999" in refused.json()["errors"][0]["message"]

    floats = await create_programme(http, world, loss_shares=[{"party": "guarantor", "share": 1.0}])
    assert floats.status_code == 422
    unknown = shares_4222(world)
    unknown[3]["organization_id"] = "org_nope"
    nobody = await create_programme(http, world, loss_shares=unknown)
    assert nobody.status_code == 422
    assert nobody.json()["errors"][0]["field"] == "loss_shares[3].organization_id"
    no_guarantor = await create_programme(
        http,
        world,
        loss_shares=[{"party": "bank", "share": "0.5"}, {"party": "pool", "share": "0.5"}],
    )
    assert no_guarantor.status_code == 422
    assert no_guarantor.json()["errors"][0]["field"] == "loss_shares"
    as_bank = await call(
        http,
        world.banks[0],
        "POST",
        "/v1/guarantee-programmes",
        {"name": "x", "fee_rate": "0.01", "loss_shares": [{"party": "guarantor", "share": "1"}]},
    )
    assert as_bank.status_code == 403


async def test_an_ineligible_request_is_422_naming_programme_id(http, world):
    pv_only = await programme(
        http, world, clusters=["pv"], max_amount={"amount": "8000.00", "currency": "EUR"}
    )
    green = await programme(http, world, green_only=True)
    cases = [
        (world.market(core=world.alloy_core), pv_only["id"], "500.00", "clusters pv only"),
        (world.market(), pv_only["id"], "8000.01", "at most 8000.00 EUR"),
        (world.market(supplier=world.brown_supplier), green["id"], "100.00", "green suppliers"),
        (world.market(), "gpr_nope", "100.00", "there is no guarantee programme"),
    ]
    for market, programme_id, payable, why in cases:
        rid = await receivable(http, world, payable, supplier=market.supplier, core=market.core)
        response = await call(
            http,
            market.supplier,
            "POST",
            "/v1/financing-requests",
            {"receivable_ids": [rid], "closes_at": closes_in(3600), "programme_id": programme_id},
        )
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["field"] == "programme_id"
        assert why in error["message"]
        # nothing of the refused request remains: the receivable can be offered again
        again = await open_request(http, market, [rid])
        assert again["guarantee"] is None
    exactly = await receivable(http, world, "8000.00")
    ok = await open_request(http, world.market(), [exactly], programme_id=pv_only["id"])
    assert ok["guarantee"]["programme_id"] == pv_only["id"]


async def test_banks_price_with_the_cover_and_acceptance_freezes_it_with_the_fee(http, world):
    created = await programme(http, world, fee_rate="0.0125")
    rid = await receivable(http, world, "10000.03")
    request = await open_request(http, world.market(), [rid], programme_id=created["id"])
    seen = await call(http, world.banks[0], "GET", f"/v1/financing-requests/{request['id']}")
    assert seen.json()["guarantee"] == {
        "programme_id": created["id"],
        "name": created["name"],
        "guarantor_id": world.guarantor.org.id,
        "fee_rate": "0.0125",
        "loss_shares": created["loss_shares"],
    }
    bid = await offer(http, world.banks[0], request["id"], advance="0.90", fee="5.00")
    accepted = await accept(http, world.market(), bid["id"])
    assert accepted.status_code == 201, accepted.text
    financing = accepted.json()
    cover = financing["guarantee"]
    advance = minor(financing["advance_amount"])
    assert advance == 900_003  # 10 000.03 × 0.9 = 9 000.027 → 9 000.03, half-even
    assert minor(cover["covered"]) == advance
    exact_fee = Fraction(advance) * Fraction("0.0125") * financing["days"] / 365
    assert abs(Fraction(minor(cover["fee"])) - exact_fee) <= Fraction(1, 2)
    assert cover["loss_shares"] == created["loss_shares"]
    assert cover["claims"] == []
    fee = minor(cover["fee"])
    assert await ledger_rows(financing["id"]) == [
        (
            "guarantee_fee",
            f"guarantee_fees_receivable:{world.supplier.org.id}:EUR",
            fee,
            0,
        ),
        ("guarantee_fee", f"guarantee_fee_income:{world.guarantor.org.id}:EUR", 0, fee),
    ]
    # the guarantor sees the financing it covers; another guarantor does not
    assert (await financing_of(http, world.guarantor, financing["id"]))["guarantee"] == cover
    other = await call(http, world.reguarantor, "GET", f"/v1/financings/{financing['id']}")
    assert other.status_code == 404
    mine = await call(http, world.guarantor, "GET", "/v1/financings")
    assert financing["id"] in [f["id"] for f in mine.json()["items"]]


# ---------------------------------------------------------------- defaults and claims


async def test_claims_of_several_programmes_and_default_patterns_match_fractions(http, world):
    """Four programmes × default patterns (nothing paid, part paid, odd amounts); the pool pays
    from its balance (topped up first, in a currency of its own)."""
    currency = "USD"
    await top_up(http, world, "1000000.00", currency)
    programmes = {
        "4-2-2-2": shares_4222(world),
        "thirds": [
            {"party": "guarantor", "share": "0.3333333333"},
            {"party": "pool", "share": "0.3333333333"},
            {"party": "bank", "share": "0.3333333334"},
        ],
        "pool-heavy": [
            {"party": "guarantor", "share": "0.125"},
            {"party": "bank", "share": "0.0625"},
            {"party": "pool", "share": "0.8125"},
        ],
        "guarantor-only": [{"party": "guarantor", "share": "1"}],
    }
    patterns = [("10000.01", None), ("7777.77", "1234.56"), ("333.33", "0.01")]
    cases = []
    for name, shares in programmes.items():
        p = await programme(http, world, currency=currency, loss_shares=shares)
        for payable, paid in patterns:
            financing, rid = await funded(http, world, p["id"], payable, currency)
            if paid:
                await pay(http, world, rid, paid)
            cases.append((name, shares, financing["id"]))
    await run_to_default()
    for name, shares, financing_id in cases:
        financing = await financing_of(http, world.banks[0], financing_id)
        assert financing["state"] == "defaulted", name
        loss = minor(financing["advance_amount"]) - minor(financing["repaid"])
        claims = financing["guarantee"]["claims"]
        expected = largest_remainder(loss, [s["share"] for s in shares])
        assert [minor(c["amount"]) for c in claims] == expected, name
        assert sum(minor(c["amount"]) for c in claims) == loss
        assert {minor(c["loss"]) for c in claims} == {loss}
        states = {c["party"]: c["state"] for c in claims}
        assert states.get("bank", "borne") == "borne"
        assert states.get("guarantor") == "raised"
        assert states.get("pool", "paid") == "paid"  # the pool had the money
        owed = sum(minor(c["amount"]) for c in claims if c["party"] != "bank")
        rows = await ledger_rows(financing_id)
        raised = [r for r in rows if r[0] == "claim_raised"]
        assert raised[0] == ("claim_raised", f"default_losses:{world.banks[0].org.id}:USD", owed, 0)
        assert sum(r[3] for r in raised) == owed
        pool_claim = [c for c in claims if c["party"] == "pool"]
        if pool_claim:
            assert ("claim_paid", "pool:USD", 0, minor(pool_claim[0]["amount"])) in rows


async def test_a_short_pool_queues_claims_and_pays_them_in_order_when_topped_up(http, world):
    currency = "GBP"
    shares = [{"party": "guarantor", "share": "0.5"}, {"party": "pool", "share": "0.5"}]
    p = await programme(http, world, currency=currency, loss_shares=shares)
    await top_up(http, world, "100.00", currency)
    # pool parts: 0.5 × 900.00 = 450.00 (first), 0.5 × 180.00 = 90.00 (second)
    first, _ = await funded(http, world, p["id"], "1000.00", currency)
    second, _ = await funded(http, world, p["id"], "200.00", currency)
    await run_to_default()

    def pool_claim(financing: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in financing["guarantee"]["claims"] if c["party"] == "pool")

    one = pool_claim(await financing_of(http, world.banks[0], first["id"]))
    two = pool_claim(await financing_of(http, world.banks[0], second["id"]))
    assert (one["amount"]["amount"], one["state"]) == ("450.00", "queued")
    # the second fits the balance but does not overtake the first
    assert (two["amount"]["amount"], two["state"]) == ("90.00", "queued")
    state = await pool(http, world, currency)
    assert state["balance"] == {"amount": "100.00", "currency": "GBP"}
    assert state["queued_claims"] == 2
    assert state["queued_amount"] == {"amount": "540.00", "currency": "GBP"}

    hook = {"url": "http://127.0.0.1:9/hook", "event_types": ["risk_claim.*"]}
    endpoint = await call(http, world.banks[0], "POST", "/v1/webhook-endpoints", hook)
    assert endpoint.status_code == 201, endpoint.text
    topped = await top_up(http, world, "400.00", currency)  # 500.00: the first only
    assert [c["id"] for c in topped["claims_paid"]] == [one["id"]]
    assert topped["pool"]["balance"] == {"amount": "50.00", "currency": "GBP"}
    topped = await top_up(http, world, "40.00", currency)  # 90.00: now the second
    assert [c["id"] for c in topped["claims_paid"]] == [two["id"]]
    assert topped["pool"]["balance"] == {"amount": "0.00", "currency": "GBP"}
    assert topped["pool"]["queued_claims"] == 0
    # the bank hears of each payment by the pool (no reference: nobody typed one)
    paid_events = await claim_paid_events(world.banks[0].org.id)
    assert paid_events[one["id"]]["amount"] == {"amount": "450.00", "currency": "GBP"}
    assert paid_events[two["id"]]["party"] == "pool"
    assert paid_events[two["id"]]["reference"] is None
    claims = await call(http, world.banks[0], "GET", "/v1/risk-claims?state=paid")
    assert {one["id"], two["id"]} <= {c["id"] for c in claims.json()["items"]}
    theirs = await call(http, world.banks[1], "GET", "/v1/risk-claims")
    assert {one["id"], two["id"]}.isdisjoint({c["id"] for c in theirs.json()["items"]})

    # a recovery returns the pool's part, at most what it paid
    back = await call(
        http,
        world.operator,
        "POST",
        "/v1/risk-pool/recoveries",
        {
            "claim_id": two["id"],
            "amount": {"amount": "30.00", "currency": "GBP"},
            "reference": "R1",
        },
    )
    assert back.status_code == 201, back.text
    assert back.json()["recovered"] == {"amount": "30.00", "currency": "GBP"}
    too_much = await call(
        http,
        world.operator,
        "POST",
        "/v1/risk-pool/recoveries",
        {
            "claim_id": two["id"],
            "amount": {"amount": "60.01", "currency": "GBP"},
            "reference": "R2",
        },
    )
    assert too_much.status_code == 422
    assert too_much.json()["errors"][0]["field"] == "amount.amount"
    assert (await pool(http, world, currency))["balance"]["amount"] == "30.00"


async def test_a_repaid_covered_financing_raises_no_claim_and_an_uncovered_default_none(
    http, world
):
    p = await programme(http, world, currency="CHF")
    repaid, rid = await funded(http, world, p["id"], "500.00", "CHF")
    await pay(http, world, rid, "500.00")
    uncovered, _ = await funded(http, world, None, "600.00", "CHF")
    await run_to_default()
    done = await financing_of(http, world.banks[0], repaid["id"])
    assert done["state"] == "repaid"
    assert done["guarantee"]["claims"] == []
    lost = await financing_of(http, world.banks[0], uncovered["id"])
    assert lost["state"] == "defaulted"
    assert lost["guarantee"] is None
    assert [r[0] for r in await ledger_rows(repaid["id"])] == ["guarantee_fee", "guarantee_fee"]
    assert await ledger_rows(uncovered["id"]) == []


async def test_the_fee_of_a_cover_whose_financing_was_never_funded_is_reversed_once(http, world):
    p = await programme(http, world, currency="CHF", fee_rate="0.02")
    rid = await receivable(http, world, "2000.00", "CHF")
    request = await open_request(http, world.market(), [rid], programme_id=p["id"])
    bid = await offer(http, world.banks[0], request["id"], currency="CHF")
    financing = (await accept(http, world.market(), bid["id"])).json()
    await registry_answers(financing["id"], outcome="refused", error="AlreadyFinanced")
    quiet = RiskSettings(
        overdue_ratio_enabled=False,
        payables_growth_enabled=False,
        payment_terms_enabled=False,
        duplicates_enabled=False,
        pool_cover_enabled=False,
    )
    first = await risk_tasks.run_risk(settings=quiet)
    second = await risk_tasks.run_risk(settings=quiet)
    assert first.fees_reversed >= 1
    assert second.fees_reversed == 0
    fee = minor(financing["guarantee"]["fee"])
    assert fee > 0
    rows = await ledger_rows(financing["id"])
    assert [r[0] for r in rows] == ["guarantee_fee"] * 2 + ["fee_reversal"] * 2
    assert rows[2:] == [
        ("fee_reversal", f"guarantee_fee_income:{world.guarantor.org.id}:CHF", fee, 0),
        ("fee_reversal", f"guarantee_fees_receivable:{world.supplier.org.id}:CHF", 0, fee),
    ]
    after = await financing_of(http, world.supplier, financing["id"])
    assert after["state"] == "rolled_back"
    assert after["guarantee"]["fee_reversed"] is True
