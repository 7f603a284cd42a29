"""``Idempotency-Key`` on the marketplace's writes (API.md, "Conventions"): a replay returns the
first response, the same key with another request is 422, concurrent uses have one effect."""

import asyncio
from typing import Any

from sqlalchemy import text

from qilian.kit import db
from tests.integration.auth.conftest import bearer, get_token
from tests.integration.financing.market import closes_in, offer, open_request, receivable, terms


async def _count(sql: str, **params: Any) -> int:
    async with db.transaction() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


async def test_replayed_accept_returns_the_first_response(http, market):
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    first = await offer(http, market.banks[0], request["id"])
    second = await offer(http, market.banks[1], request["id"])
    headers = {**bearer(await get_token(http, market.supplier.org)), "Idempotency-Key": "acc-1"}
    won = await http.post(f"/v1/offers/{first['id']}/accept", headers=headers)
    assert won.status_code == 201
    replay = await http.post(f"/v1/offers/{first['id']}/accept", headers=headers)
    assert replay.status_code == 201
    assert replay.json() == won.json()
    assert replay.headers.get("Idempotent-Replayed") == "true"
    # the same key for another request is refused, and nothing happens
    other = await http.post(f"/v1/offers/{second['id']}/accept", headers=headers)
    assert other.status_code == 422
    assert (
        await _count(
            "SELECT count(*) FROM platform.financings WHERE request_id = :r", r=request["id"]
        )
        == 1
    )


async def test_concurrent_uses_of_one_key_have_one_effect(http, market):
    headers = {**bearer(await get_token(http, market.banks[0].org)), "Idempotency-Key": "bid-1"}
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    answers = await asyncio.gather(
        *(
            http.post(
                f"/v1/financing-requests/{request['id']}/offers", json=terms(), headers=headers
            )
            for _ in range(10)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {201, 409}, codes
    created = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1  # every 201 is the same offer (the first, or its replay)
    assert (
        await _count("SELECT count(*) FROM platform.offers WHERE request_id = :r", r=request["id"])
        == 1
    )


async def test_a_replayed_request_creation_is_one_request(http, market):
    rid = await receivable(http, market)
    headers = {**bearer(await get_token(http, market.supplier.org)), "Idempotency-Key": "frq-1"}
    body = {"receivable_ids": [rid], "closes_at": closes_in(3600)}
    first = await http.post("/v1/financing-requests", json=body, headers=headers)
    again = await http.post("/v1/financing-requests", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert (
        await _count(
            "SELECT count(*) FROM platform.financing_request_items WHERE receivable_id = :r",
            r=rid,
        )
        == 1
    )
