"""Concurrency: twenty top-ups at once while claims wait in the queue — every top-up is one
entry, the chain has no fork or gap, each queued claim is paid exactly once and in order, and
the pool's balance is exactly what went in less what was paid."""

import asyncio

import httpx
from sqlalchemy import text

from qilian.kit import db
from services.api.risk import ledger
from tests.integration.receivables.lifecycle_helpers import call
from tests.integration.risk.helpers import funded, programme, run_to_default


async def test_concurrent_top_ups_pay_each_queued_claim_once_in_order(http, world):
    currency = "BHD"
    shares = [{"party": "guarantor", "share": "0.5"}, {"party": "pool", "share": "0.5"}]
    p = await programme(http, world, currency=currency, loss_shares=shares)
    first, _ = await funded(http, world, p["id"], "1000.000", currency)
    second, _ = await funded(http, world, p["id"], "400.000", currency)
    await run_to_default()  # pool parts: 0.5 × 900.000 = 450.000, then 0.5 × 360.000 = 180.000

    async def top_up(n: int) -> httpx.Response:
        return await call(
            http,
            world.operator,
            "POST",
            "/v1/risk-pool/top-ups",
            {"amount": {"amount": "50.000", "currency": currency}, "reference": f"T{n}"},
        )

    answers = await asyncio.gather(*(top_up(n) for n in range(20)))
    assert [a.status_code for a in answers] == [201] * 20
    paid = [c for a in answers for c in a.json()["claims_paid"]]
    assert sorted(c["financing_id"] for c in paid) == sorted([first["id"], second["id"]])
    assert len({c["id"] for c in paid}) == 2  # each paid by exactly one of the top-ups
    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT e.financing_id, e.seq FROM platform.risk_ledger_entries e "
                "WHERE e.kind = 'claim_paid' AND e.currency = :c ORDER BY e.seq"
            ),
            {"c": currency},
        )
        payments = [r.financing_id for r in rows]
        assert payments == [first["id"], second["id"]]  # in the queue's order, once each
        assert await ledger.balance(session, ledger.pool(currency)) == 1_000_000 - 450_000 - 180_000
        result = await ledger.verify(session)
    assert result.ok, result.problems
