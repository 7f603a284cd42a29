"""The marketplace through its API: requests, sealed offers, ranking, acceptance, the registry
saga (answers applied as the ledger sends them), funding, repayment, default, lapse, timers."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import col, select

from qilian.kit import db
from qilian.kit.money import Money
from services.api.financing import pricing, service, tasks
from services.api.financing.models import FinancingRequestItem, RegistryOperation
from services.api.financing.settings import FinancingSettings, get_financing_settings
from services.api.receivables.tasks import sweep_overdue
from tests.integration.financing.market import (
    DUE,
    ISSUED,
    accept,
    bid,
    closes_in,
    offer,
    open_request,
    receivable,
    registry_answers,
    terms,
)
from tests.integration.receivables.lifecycle_helpers import call, events, upload


async def financing_of(http: Any, party: Any, financing_id: str) -> Any:
    response = await call(http, party, "GET", f"/v1/financings/{financing_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def registry_ops(financing_id: str) -> list[tuple[str, int | None, str | None]]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(RegistryOperation).where(col(RegistryOperation.financing_id) == financing_id)
        )
        return [(op.action, op.reason, op.outcome) for op in rows.scalars()]


async def outbox_payloads(topic: str, financing_id: str) -> list[Any]:
    from sqlalchemy import text

    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT payload FROM platform.outbox WHERE topic = :topic "
                "AND payload->>'financing_id' = :fid ORDER BY id"
            ),
            {"topic": topic, "fid": financing_id},
        )
        return [r.payload for r in rows]


# ---------------------------------------------------------------- requests


async def test_a_request_puts_the_receivable_in_auction_and_banks_see_what_they_price(http, market):
    rid = await receivable(http, market, payable="12000.00")
    request = await open_request(http, market, [rid], min_advance_rate="0.8")
    assert request["state"] == "open"
    assert request["face_value"] == {"amount": "12000.00", "currency": "EUR"}
    assert request["requester_id"] == market.supplier.org.id
    assert request["active_offers"] == 0
    got = await call(http, market.supplier, "GET", f"/v1/receivables/{rid}")
    assert got.json()["states"]["financing"] == "in_auction"
    assert (await events(http, market.supplier, rid))[-1]["type"] == "financing_requested"

    seen = await call(http, market.banks[0], "GET", f"/v1/financing-requests/{request['id']}")
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["debtor"]["id"] == market.core.org.id
    assert body["debtor"]["cluster"] == "pv"
    assert body["due_date"] == DUE
    assert body["tier"] == 1
    assert body["receivables"][0]["anchoring"] == "unknown"  # the test's ledger is down
    # nothing else: not the supplier, not the competition
    assert body["requester_id"] is None
    assert body["active_offers"] is None
    listed = await call(http, market.banks[1], "GET", "/v1/financing-requests?limit=200")
    assert request["id"] in {r["id"] for r in listed.json()["items"]}
    # the bank is not a party of the receivable before it wins
    hidden = await call(http, market.banks[0], "GET", f"/v1/receivables/{rid}")
    assert hidden.status_code == 404


async def test_eligibility_is_checked_with_reasons(http, market):
    rid = await receivable(http, market)
    unconfirmed = (await upload(http, market.supplier, market.core, issue=ISSUED, due=DUE))["id"]
    refused = await call(
        http,
        market.supplier,
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": [unconfirmed], "closes_at": closes_in(3600)},
    )
    assert refused.status_code == 409
    assert refused.json()["reason"] == "not_confirmed"
    # due too soon after the auction closes
    soon = await receivable(http, market, due=(date.today() + timedelta(days=3)).isoformat())
    too_soon = await call(
        http,
        market.supplier,
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": [soon], "closes_at": closes_in(3600)},
    )
    assert too_soon.status_code == 422
    assert too_soon.json()["errors"][0]["field"] == "closes_at"
    # an auction window too long, a time without zone, an empty list
    for body, field in (
        ({"receivable_ids": [rid], "closes_at": closes_in(86400 * 40)}, "closes_at"),
        ({"receivable_ids": [rid], "closes_at": "2027-01-01T00:00:00"}, "closes_at"),
        ({"receivable_ids": [], "closes_at": closes_in(3600)}, "receivable_ids"),
        ({"receivable_ids": [rid, rid], "closes_at": closes_in(3600)}, "receivable_ids"),
        (
            {"receivable_ids": [rid], "closes_at": closes_in(3600), "min_advance_rate": 0.9},
            "min_advance_rate",
        ),
    ):
        response = await call(http, market.supplier, "POST", "/v1/financing-requests", body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"] == field, response.json()
    # not the holder: another supplier gets 404 (it is no party of it)
    other = await call(
        http,
        market.other_supplier,
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": [rid], "closes_at": closes_in(3600)},
    )
    assert other.status_code == 404
    # a bank may never ask
    bank = await call(
        http,
        market.banks[0],
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": [rid], "closes_at": closes_in(3600)},
    )
    assert bank.status_code == 403
    # once in an auction, not twice
    await open_request(http, market, [rid])
    twice = await call(
        http,
        market.supplier,
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": [rid], "closes_at": closes_in(3600)},
    )
    assert twice.status_code == 409
    assert twice.json()["reason"] == "in_auction"


async def test_a_receivable_in_auction_is_frozen_for_split_and_payment(http, market):
    rid = await receivable(http, market)
    await open_request(http, market, [rid])
    split = await call(
        http,
        market.supplier,
        "POST",
        f"/v1/receivables/{rid}/split",
        {"parts": [{"amount": "5000.00"}, {"amount": "5000.00"}]},
    )
    assert split.status_code == 409
    paid = await call(
        http,
        market.core,
        "POST",
        f"/v1/receivables/{rid}/payments",
        {"amount": "1.00", "paid_at": date.today().isoformat(), "reference": "R"},
    )
    assert paid.status_code == 409


async def test_several_receivables_share_debtor_currency_and_due_date(http, market):
    first = await receivable(http, market, payable="100.00")
    second = await receivable(http, market, payable="250.50")
    other_due = await receivable(http, market, due=(date.today() + timedelta(days=120)).isoformat())
    request = await open_request(http, market, [first, second])
    assert request["face_value"]["amount"] == "350.50"
    assert len(request["receivables"]) == 2
    mixed = await call(
        http,
        market.supplier,
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": [other_due, await receivable(http, market)], "closes_at": closes_in(60)},
    )
    assert mixed.status_code == 422
    assert "due_date" in mixed.json()["detail"]


async def test_cancel_returns_the_receivables_to_the_market(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    mine = await offer(http, market.banks[0], request["id"])
    assert (
        await call(http, market.banks[0], "POST", f"/v1/financing-requests/{request['id']}/cancel")
    ).status_code == 403
    cancelled = await call(
        http, market.supplier, "POST", f"/v1/financing-requests/{request['id']}/cancel"
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    again = await call(
        http, market.supplier, "POST", f"/v1/financing-requests/{request['id']}/cancel"
    )
    assert again.status_code == 409
    got = await call(http, market.banks[0], "GET", f"/v1/offers/{mine['id']}")
    assert got.json()["state"] == "expired"
    receivable_now = await call(http, market.supplier, "GET", f"/v1/receivables/{rid}")
    assert receivable_now.json()["states"]["financing"] == "unfinanced"
    # and it can be offered again
    await open_request(http, market, [rid])


# ---------------------------------------------------------------- offers


async def test_offers_are_validated_naming_the_field(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid], min_advance_rate="0.85", recourse="recourse")
    rid_ = request["id"]
    cases = [
        (terms(advance="0.80"), "advance_rate"),  # below the requester's minimum
        (terms(advance="1.5"), "advance_rate"),
        (terms(advance="0"), "advance_rate"),
        (terms(rate="0.50"), "annual_rate"),  # above the platform's cap
        (terms(rate="-0.01"), "annual_rate"),
        (terms(fee="-1.00"), "fee.amount"),
        (terms(fee="5000.00"), "fee.amount"),  # more than 10 % of face value
        (terms(currency="USD"), "fee.currency"),
        (terms(fee="1.001"), "fee"),  # more decimals than EUR has (a server error before)
        (terms(recourse=False), "recourse"),  # the requester wants recourse
        (terms(day_count="30/360"), "day_count"),
        (terms(expires_at=closes_in(-10)), "expires_at"),
        (terms(expires_at=closes_in(86400 * 3)), "expires_at"),  # after closes_at
        ({**terms(), "advance_rate": 0.9}, "advance_rate"),  # a float
        ({**terms(), "color": "red"}, "color"),
    ]
    for body, field in cases:
        response = await call(
            http, market.banks[0], "POST", f"/v1/financing-requests/{rid_}/offers", body
        )
        assert response.status_code == 422, (body, response.text)
        fields = [e["field"] for e in response.json()["errors"]]
        assert any(f == field or f.startswith(field) for f in fields), (field, fields)
    # a supplier may never bid
    assert (await bid(http, market.supplier, rid_, advance="0.9")).status_code == 403


async def test_a_new_offer_replaces_the_banks_active_one(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    first = await offer(http, market.banks[0], request["id"], rate="0.06")
    second = await offer(http, market.banks[0], request["id"], rate="0.05")
    assert second["replaces_id"] == first["id"]
    mine = await call(
        http, market.banks[0], "GET", f"/v1/financing-requests/{request['id']}/offers"
    )
    states = {o["id"]: o["state"] for o in mine.json()}
    assert states == {first["id"]: "replaced", second["id"]: "active"}
    seen = await call(http, market.supplier, "GET", f"/v1/financing-requests/{request['id']}")
    assert seen.json()["active_offers"] == 1


async def test_withdraw_while_active_only(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    mine = await offer(http, market.banks[0], request["id"])
    path = f"/v1/offers/{mine['id']}/withdraw"
    assert (await call(http, market.banks[1], "POST", path)).status_code == 404
    assert (await call(http, market.supplier, "POST", path)).status_code == 403
    withdrawn = await call(http, market.banks[0], "POST", path)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["state"] == "withdrawn"
    assert (await call(http, market.banks[0], "POST", path)).status_code == 409
    assert (await accept(http, market, mine["id"])).status_code == 409


async def test_the_requester_sees_every_offer_ranked_with_exact_figures(http, market):
    rid = await receivable(http, market, payable="100000.00")
    request = await open_request(http, market, [rid])
    a = await offer(http, market.banks[0], request["id"], advance="0.90", rate="0.05", fee="50.00")
    b = await offer(
        http,
        market.banks[1],
        request["id"],
        advance="0.90",
        rate="0.05",
        fee="50.00",
        day_count="ACT/365",
    )
    c = await offer(http, market.banks[2], request["id"], advance="0.95", rate="0.08", fee="0.00")
    ranked = await call(
        http, market.supplier, "GET", f"/v1/financing-requests/{request['id']}/offers"
    )
    assert ranked.status_code == 200
    body = ranked.json()
    face = Money.of("100000.00", "EUR")
    due = date.fromisoformat(DUE)
    expected = {}
    for o in (a, b, c):
        q = pricing.quote(
            face,
            due,
            date.today(),
            pricing.Terms(
                Decimal(o["advance_rate"]),
                Decimal(o["annual_rate"]),
                Money.of(o["fee"]["amount"], "EUR"),
                pricing.DayCount(o["day_count"]),
            ),
        )
        expected[o["id"]] = q
    order = sorted(
        expected, key=lambda i: (-expected[i].net_proceeds.minor, expected[i].effective_annual_rate)
    )
    assert [o["id"] for o in body] == order
    assert [o["rank"] for o in body] == [1, 2, 3]
    for o in body:
        q = expected[o["id"]]
        assert o["net_proceeds"] == q.net_proceeds.to_json()
        assert o["advance_amount"] == q.advance_amount.to_json()
        assert o["discount"] == q.discount.to_json()
        assert Decimal(o["effective_annual_rate"]) == q.effective_annual_rate
        assert o["days"] == (due - date.today()).days
    # ACT/365 discounts less than ACT/360 at the same rate: b ranks above a
    assert order.index(b["id"]) < order.index(a["id"])


# ---------------------------------------------------------------- acceptance and the saga


async def test_accept_the_best_then_register_fund_and_repay(http, market):
    rid = await receivable(http, market, payable="20000.00")
    request = await open_request(http, market, [rid])
    worse = await offer(http, market.banks[0], request["id"], rate="0.07")
    best = await offer(http, market.banks[1], request["id"], rate="0.04")
    # only the requester accepts; another supplier and the banks cannot
    assert (
        await call(http, market.other_supplier, "POST", f"/v1/offers/{best['id']}/accept")
    ).status_code == 404
    assert (
        await call(http, market.banks[1], "POST", f"/v1/offers/{best['id']}/accept")
    ).status_code == 403
    won = await accept(http, market, best["id"])
    assert won.status_code == 201, won.text
    financing = won.json()
    assert financing["state"] == "registering"
    assert financing["bank_id"] == market.banks[1].org.id
    assert financing["net_proceeds"] == best["net_proceeds"]
    assert [(r["action"], r["outcome"]) for r in financing["registry"]] == [("register", "pending")]
    # the losers lost, the request is accepted, the receivable financed to the bank
    loser = await call(http, market.banks[0], "GET", f"/v1/offers/{worse['id']}")
    assert loser.json()["state"] == "lost"
    assert (await accept(http, market, worse["id"])).status_code == 409
    rv = (await call(http, market.banks[1], "GET", f"/v1/receivables/{rid}")).json()
    assert rv["states"]["financing"] == "financed"
    assert rv["financier_id"] == market.banks[1].org.id
    # the registry request went to the ledger through the outbox, with the invoice fingerprint
    [sent] = await outbox_payloads("financing.registry", financing["id"])
    assert sent["action"] == "register"
    assert sent["receivable_id"] == rid
    assert sent["part"] is False
    assert len(sent["invoice_fingerprint"]) == 64
    # funding is refused until the registration is mined
    disburse = f"/v1/financings/{financing['id']}/disbursement"
    early = await call(http, market.banks[1], "POST", disburse, {"reference": "WIRE-1"})
    assert early.status_code == 409
    assert early.json()["reason"] == "registration_pending"
    assert await registry_answers(financing["id"]) == 1
    assert await registry_answers(financing["id"]) == 0  # answered once
    registered = await financing_of(http, market.supplier, financing["id"])
    assert registered["state"] == "awaiting_disbursement"
    assert registered["fund_by"] is not None
    assert registered["registry"][0]["outcome"] == "done"
    # only the bank funds, with the net proceeds if it names an amount
    assert (
        await call(http, market.banks[0], "POST", disburse, {"reference": "X"})
    ).status_code == 404
    wrong = await call(
        http,
        market.banks[1],
        "POST",
        disburse,
        {"reference": "WIRE-1", "amount": {"amount": "1.00", "currency": "EUR"}},
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "amount"
    for reference in ("WIRE\x00-1", "   "):  # a NUL was a server error; blank is no reference
        refused = await call(http, market.banks[1], "POST", disburse, {"reference": reference})
        assert refused.status_code == 422, (reference, refused.text)
        assert refused.json()["errors"][0]["field"] == "reference"
    funded = await call(
        http,
        market.banks[1],
        "POST",
        disburse,
        {"reference": "WIRE-1", "amount": financing["net_proceeds"]},
    )
    assert funded.status_code == 200, funded.text
    assert funded.json()["state"] == "funded"
    # the debtor sees the financing (disclosed factoring) and pays the bank at maturity
    debtor_view = await financing_of(http, market.core, financing["id"])
    assert debtor_view["bank_id"] == market.banks[1].org.id
    paid = await call(
        http,
        market.core,
        "POST",
        f"/v1/receivables/{rid}/payments",
        {"amount": "20000.00", "paid_at": DUE, "reference": "AT-MATURITY"},
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["payment"]["payee_id"] == market.banks[1].org.id
    report = await tasks.run_timers()
    assert report.repaid >= 1
    repaid = await financing_of(http, market.banks[1], financing["id"])
    assert repaid["state"] == "repaid"
    assert repaid["repaid"] == {"amount": "20000.00", "currency": "EUR"}
    assert ("release", 1, None) in await registry_ops(financing["id"])
    types = [e["type"] for e in await events(http, market.supplier, rid)]
    assert types[-4:] == [
        "financing_accepted",
        "financing_funded",
        "payment_recorded",
        "financing_repaid",
    ]
    # timers are idempotent
    again = await tasks.run_timers()
    assert again.repaid == 0


async def test_a_registry_refusal_rolls_the_acceptance_back(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    mine = await offer(http, market.banks[0], request["id"])
    financing = (await accept(http, market, mine["id"])).json()
    assert await registry_answers(financing["id"], "refused", "AlreadyFinanced") == 1
    rolled = await financing_of(http, market.supplier, financing["id"])
    assert rolled["state"] == "rolled_back"
    assert "AlreadyFinanced" in rolled["state_reason"]
    request_now = await call(
        http, market.supplier, "GET", f"/v1/financing-requests/{request['id']}"
    )
    assert request_now.json()["state"] == "rolled_back"
    rv = await call(http, market.supplier, "GET", f"/v1/receivables/{rid}")
    assert rv.json()["states"]["financing"] == "unfinanced"
    assert rv.json()["financier_id"] is None
    assert (await events(http, market.supplier, rid))[-1]["type"] == "financing_rolled_back"
    # nothing was registered, so nothing is released
    assert await registry_ops(financing["id"]) == [("register", None, "refused")]


async def test_a_part_registered_after_another_refused_is_released(http, market):
    first = await receivable(http, market, payable="100.00")
    second = await receivable(http, market, payable="200.00")
    request = await open_request(http, market, [first, second])
    mine = await offer(http, market.banks[0], request["id"], fee="1.00")
    financing = (await accept(http, market, mine["id"])).json()
    async with db.transaction() as session:
        ops = (
            await session.execute(
                select(RegistryOperation)
                .where(col(RegistryOperation.financing_id) == financing["id"])
                .order_by(col(RegistryOperation.receivable_id))
            )
        ).scalars()
        by_receivable = {op.receivable_id: op.operation_id for op in ops}

    async with db.transaction() as session:
        await service.apply_registry_result(
            session,
            {
                "operation_id": by_receivable[first],
                "action": "register",
                "outcome": "refused",
                "error": "InvoicePartsFinanced",
            },
        )
    async with db.transaction() as session:
        await service.apply_registry_result(
            session,
            {"operation_id": by_receivable[second], "action": "register", "outcome": "done"},
        )
    answered = await registry_ops(financing["id"])
    assert sorted(answered, key=str) == sorted(
        [("register", None, "refused"), ("register", None, "done"), ("release", 2, None)], key=str
    )


async def test_an_unfunded_acceptance_lapses_and_the_receivable_returns(http, market, monkeypatch):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    mine = await offer(http, market.banks[0], request["id"])
    financing = (await accept(http, market, mine["id"])).json()
    # the worker reads its settings from the environment: a one-second funding window
    monkeypatch.setenv("QILIAN_FINANCING_FUNDING_WINDOW_SECONDS", "1")
    get_financing_settings.cache_clear()
    try:
        await registry_answers(financing["id"])
        await asyncio.sleep(1.2)
        report = await tasks.run_timers()
    finally:
        monkeypatch.delenv("QILIAN_FINANCING_FUNDING_WINDOW_SECONDS")
        get_financing_settings.cache_clear()
    assert report.lapsed >= 1
    lapsed = await financing_of(http, market.supplier, financing["id"])
    assert lapsed["state"] == "lapsed"
    assert ("release", 2, None) in await registry_ops(financing["id"])
    rv = await call(http, market.supplier, "GET", f"/v1/receivables/{rid}")
    assert rv.json()["states"]["financing"] == "unfinanced"
    # the bank can no longer fund; the receivable can be offered again
    late = await call(
        http,
        market.banks[0],
        "POST",
        f"/v1/financings/{financing['id']}/disbursement",
        {"reference": "LATE"},
    )
    assert late.status_code == 409
    assert late.json()["state"] == "lapsed"
    await open_request(http, market, [rid])


async def test_unpaid_past_grace_defaults_with_the_recourse_claim(http, market):
    rid = await receivable(http, market, payable="5000.00")
    request = await open_request(http, market, [rid])
    mine = await offer(http, market.banks[0], request["id"], recourse=True)
    financing = (await accept(http, market, mine["id"])).json()
    await registry_answers(financing["id"])
    funded = await call(
        http,
        market.banks[0],
        "POST",
        f"/v1/financings/{financing['id']}/disbursement",
        {"reference": "WIRE"},
    )
    assert funded.status_code == 200
    paid = await call(
        http,
        market.core,
        "POST",
        f"/v1/receivables/{rid}/payments",
        {"amount": "1000.00", "paid_at": DUE, "reference": "PART"},
    )
    assert paid.status_code == 201
    due = date.fromisoformat(DUE)
    grace = FinancingSettings().default_grace_days
    not_yet = await tasks.run_timers(on=due + timedelta(days=grace))
    assert not_yet.defaulted == 0
    assert await sweep_overdue(due + timedelta(days=1), grace_days=0) >= 1
    report = await tasks.run_timers(on=due + timedelta(days=grace + 1))
    assert report.defaulted >= 1
    defaulted = await financing_of(http, market.supplier, financing["id"])
    assert defaulted["state"] == "defaulted"
    assert defaulted["recourse_claim"] == {"amount": "4000.00", "currency": "EUR"}
    assert defaulted["repaid"] == {"amount": "1000.00", "currency": "EUR"}
    assert ("release", 3, None) in await registry_ops(financing["id"])
    assert (await events(http, market.supplier, rid))[-1]["type"] == "financing_defaulted"


async def _until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0
) -> None:
    """Run the timers until ``condition()`` holds (generous bound: a loaded machine is slow)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await tasks.run_timers()
        await asyncio.sleep(0.2)


async def _state(http: Any, party: Any, path: str) -> Any:
    return (await call(http, party, "GET", path)).json()["state"]


async def test_offers_expire_on_time(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    mine = await offer(http, market.banks[0], request["id"], expires_at=closes_in(1))
    other = await offer(http, market.banks[1], request["id"])
    path = f"/v1/offers/{mine['id']}"

    async def expired():
        return await _state(http, market.banks[0], path) == "expired"

    await _until(expired, "the offer to expire")
    assert (await accept(http, market, mine["id"])).status_code == 409
    # the other offer and the auction are untouched
    assert await _state(http, market.banks[1], f"/v1/offers/{other['id']}") == "active"
    assert await _state(http, market.supplier, f"/v1/financing-requests/{request['id']}") == "open"


async def test_auctions_close_on_time(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid], seconds=2)
    other = await offer(http, market.banks[1], request["id"])
    path = f"/v1/financing-requests/{request['id']}"

    async def closed():
        return await _state(http, market.supplier, path) == "expired"

    await _until(closed, "the auction to close")
    assert (await accept(http, market, other["id"])).status_code == 409
    assert await _state(http, market.banks[1], f"/v1/offers/{other['id']}") == "expired"
    rv = await call(http, market.supplier, "GET", f"/v1/receivables/{rid}")
    assert rv.json()["states"]["financing"] == "unfinanced"
    async with db.transaction() as session:
        live = await session.execute(
            select(FinancingRequestItem).where(
                col(FinancingRequestItem.request_id) == request["id"],
                col(FinancingRequestItem.live).is_(True),
            )
        )
        assert live.first() is None
    # late bids are refused, and the timers are idempotent
    assert (await bid(http, market.banks[2], request["id"])).status_code in (404, 409)
    async with db.transaction() as session:
        assert await service.close_auction(session, request["id"]) is False
