"""Listing financing requests reads the anchoring of the page's receivables in one ledger call
(``POST /v1/anchoring/status``), not one ``/v1/proofs/receivables/{id}`` per receivable, and
shows the same ``anchoring`` as the per-receivable read — against the real ledger app on anvil."""

from __future__ import annotations

from typing import Any

import httpx

from qilian.kit import db
from qilian.kit.anvil import Anvil
from services.api.receivables import ledger, repository
from services.ledger.anchoring import tasks
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.main import create_app as create_ledger
from tests.integration.financing.market import Market, open_request, receivable
from tests.integration.ledger_app import Counting, chain, deliver, ledger_settings, mine
from tests.integration.receivables.lifecycle_helpers import call

__all__ = ["chain", "ledger_settings"]


async def one_by_one(
    ledger_app: httpx.AsyncBaseTransport, receivable_ids: list[str]
) -> dict[str, str]:
    """Each receivable's status as the listing read it before: one proofs call per receivable."""
    async with db.transaction() as session:
        events = {
            rid: [(e.event_id, e.seq) for e in await repository.events(session, rid)]
            for rid in receivable_ids
        }
    async with ledger.LedgerClient("http://ledger", transport=ledger_app) as client:
        return {
            rid: (await ledger.anchoring(client, rid, events[rid]))[0] for rid in receivable_ids
        }


async def test_a_page_of_requests_reads_anchoring_in_one_ledger_call(
    http: httpx.AsyncClient,
    app: Any,
    market: Market,
    ledger_settings: AnchoringSettings,
    chain: Anvil,
):
    r1, r2, r3, r4, r5 = [await receivable(http, market) for _ in range(5)]
    requests = [
        (await open_request(http, market, ids))["id"] for ids in ([r1, r2], [r3], [r4], [r5])
    ]
    async with db.transaction() as session:
        events = await repository.events_of_many(session, [r1, r2, r3, r4, r5])
    for rid in (r1, r2):  # everything anchored, then final
        for event_id, _ in events[rid]:
            await deliver(event_id)
    assert (await tasks.tick(ledger_settings)).sent
    mine(chain)
    await tasks.tick(ledger_settings)
    for event_id, _ in events[r3]:  # anchored, not final
        await deliver(event_id)
    await deliver(events[r4][0][0])  # its first event anchored, the others not received
    assert (await tasks.tick(ledger_settings)).sent
    # r5: nothing received by the ledger

    ledger_app = httpx.ASGITransport(app=create_ledger(ledger_settings))
    expected = await one_by_one(ledger_app, [r1, r2, r3, r4, r5])
    assert expected == {r1: "final", r2: "final", r3: "anchored", r4: "pending", r5: "pending"}

    counted = Counting(ledger_app)
    app.state.ledger_transport = counted
    listed: dict[str, dict[str, Any]] = {}
    pages, cursor = 0, None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        path = "/v1/financing-requests?" + "&".join(f"{k}={v}" for k, v in params.items())
        counted.paths.clear()
        response = await call(http, market.supplier, "GET", path)
        assert response.status_code == 200, response.text
        assert counted.paths == ["/v1/anchoring/status"]  # one call per page
        pages += 1
        listed |= {item["id"]: item for item in response.json()["items"]}
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    assert pages == 2
    assert set(listed) == set(requests)

    for request_id in requests:
        items = listed[request_id]["receivables"]
        assert {i["receivable_id"]: i["anchoring"] for i in items} == {
            i["receivable_id"]: expected[i["receivable_id"]] for i in items
        }
    assert [listed[rid]["anchoring"] for rid in requests] == [
        "final",
        "anchored",
        "pending",
        "pending",
    ]

    # one request alone reads the same, also in one call
    counted.paths.clear()
    one = await call(http, market.supplier, "GET", f"/v1/financing-requests/{requests[0]}")
    assert one.status_code == 200, one.text
    assert counted.paths == ["/v1/anchoring/status"]
    assert one.json() == listed[requests[0]]
