"""A bank never learns anything of another bank's offers (ARCHITECTURE.md, rule 4): not through a
list, a count, a single read, an error, a financing, a receivable, an event or a webhook."""

import json
from typing import Any

from sqlalchemy import text

from qilian.kit import db
from tests.integration.financing.market import accept, bid, offer, open_request, receivable
from tests.integration.receivables.lifecycle_helpers import call


async def _endpoint(http: Any, bank: Any) -> Any:
    created = await call(
        http,
        bank,
        "POST",
        "/v1/webhook-endpoints",
        # loopback's discard port refuses at once: the messages left pending by this test never
        # slow down another test's delivery passes (no name to resolve, no timeout to wait for)
        {"url": "http://127.0.0.1:9/qilian", "event_types": ["*"]},
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _messages(http: Any, bank: Any, endpoint_id: str) -> Any:
    response = await call(
        http, bank, "GET", f"/v1/webhook-endpoints/{endpoint_id}/messages?limit=200"
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _bodies(organization_id: str) -> list[str]:
    """Every webhook body queued for the organisation (the exact signed payloads)."""
    async with db.transaction() as session:
        rows = await session.execute(
            text("SELECT payload FROM platform.webhook_messages WHERE organization_id = :o"),
            {"o": organization_id},
        )
        return [r.payload for r in rows]


async def test_bank_b_learns_nothing_of_bank_a(http, market):
    bank_a, bank_b = market.banks[0], market.banks[1]
    hook_a, hook_b = await _endpoint(http, bank_a), await _endpoint(http, bank_b)
    rid = await receivable(http, market)
    request = await open_request(http, market, [rid])
    path = f"/v1/financing-requests/{request['id']}"
    offer_a = await offer(http, bank_a, request["id"], rate="0.04")
    offer_b = await offer(http, bank_b, request["id"], rate="0.06")
    secret = offer_a["id"]

    # while open: B sees the request but not A's offer, nor how many offers there are
    seen = (await call(http, bank_b, "GET", path)).json()
    assert seen["active_offers"] is None
    own = (await call(http, bank_b, "GET", f"{path}/offers")).json()
    assert [o["id"] for o in own] == [offer_b["id"]]
    assert all(o["rank"] is None for o in own)  # a rank would reveal the competition
    listed = (await call(http, bank_b, "GET", "/v1/offers?limit=200")).json()["items"]
    assert {o["bank_id"] for o in listed} == {bank_b.org.id}
    for method, url in (
        ("GET", f"/v1/offers/{secret}"),
        ("POST", f"/v1/offers/{secret}/withdraw"),
    ):
        response = await call(http, bank_b, method, url)
        assert response.status_code == 404
        assert bank_a.org.id not in response.text  # the id asked for may be echoed, not A
    # the supplier sees both, ranked
    ranked = (await call(http, market.supplier, "GET", f"{path}/offers")).json()
    assert [o["id"] for o in ranked] == [secret, offer_b["id"]]

    # A wins
    financing = (await accept(http, market, secret)).json()
    after = (await call(http, bank_b, "GET", path)).json()
    assert after["accepted_offer_id"] is None
    assert (await call(http, bank_b, "GET", f"/v1/financings/{financing['id']}")).status_code == 404
    assert (await call(http, bank_b, "GET", f"/v1/receivables/{rid}")).status_code == 404
    assert (await call(http, bank_b, "GET", f"/v1/receivables/{rid}/events")).status_code == 404
    financings = (await call(http, bank_b, "GET", "/v1/financings")).json()["items"]
    assert financing["id"] not in {f["id"] for f in financings}
    # a late bid or a second look gives B nothing about who won or at what price
    late = await bid(http, bank_b, request["id"], rate="0.03")
    assert late.status_code in (404, 409)
    for body in (late.text, (await call(http, bank_b, "GET", f"{path}/offers")).text):
        assert secret not in body
        assert bank_a.org.id not in body
        assert financing["id"] not in body
    mine = (await call(http, bank_b, "GET", f"/v1/offers/{offer_b['id']}")).json()
    assert mine["state"] == "lost"

    # webhooks: each bank hears of its own offer only
    messages_b = await _messages(http, bank_b, hook_b)
    types_b = sorted(m["event_type"] for m in messages_b)
    assert "offer.lost" in types_b
    assert "offer.accepted" not in types_b
    blob_b = json.dumps(messages_b) + "".join(await _bodies(bank_b.org.id))
    assert offer_b["id"] in blob_b  # the bodies are there: B's own offer is named
    assert secret not in blob_b
    assert bank_a.org.id not in blob_b
    assert financing["id"] not in blob_b
    messages_a = await _messages(http, bank_a, hook_a)
    assert "offer.accepted" in {m["event_type"] for m in messages_a}
    assert offer_b["id"] not in json.dumps(messages_a) + "".join(await _bodies(bank_a.org.id))
    for bank, hook in ((bank_a, hook_a), (bank_b, hook_b)):  # later tests' events stay away
        deleted = await call(http, bank, "DELETE", f"/v1/webhook-endpoints/{hook}")
        assert deleted.status_code in (200, 204), deleted.text
