"""The api's batch read of anchoring against the real ledger app (over ASGI, on anvil and the
session's PostgreSQL): ``anchoring_many`` answers exactly what ``anchoring`` answers per
receivable — final, anchored, pending in a closed batch, received but not recorded, unknown to the
ledger, no event at all — in one ledger call, and ``unknown`` for all when the ledger is down."""

from __future__ import annotations

import httpx

from qilian.kit import db
from qilian.kit.anvil import Anvil
from services.api.receivables import ledger
from services.ledger.anchoring import service, tasks
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.main import create_app as create_ledger
from tests.integration.ledger.conftest import event_payload, feed, new_id
from tests.integration.ledger_app import Counting, chain, ledger_settings, mine

__all__ = ["chain", "ledger_settings"]


async def fed(receivable_id: str, seqs: range) -> list[tuple[str, int]]:
    return [(await feed(event_payload(receivable_id, seq)), seq) for seq in seqs]


def down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("ledger down (test)", request=request)


async def a_mix_of_receivables(
    settings: AnchoringSettings, chain: Anvil
) -> dict[str, list[tuple[str, int]]]:
    """Receivables in every state the ledger can show, with the events the api knows of."""
    final, partly, anchored, closed, received, unknown, mixed = (new_id("rcv") for _ in range(7))
    events = {rid: await fed(rid, range(1, 3)) for rid in (final, partly)}
    assert (await tasks.tick(settings)).sent
    mine(chain)
    await tasks.tick(settings)  # first batch final
    events[partly] += await fed(partly, range(3, 4))
    events[anchored] = await fed(anchored, range(1, 2))
    events[mixed] = await fed(mixed, range(1, 2))
    assert (await tasks.tick(settings)).sent  # second batch anchored
    events[mixed].append((new_id("evt"), 2))  # still in the api's outbox
    events[closed] = await fed(closed, range(1, 3))
    async with db.transaction() as session:
        await service.build_records(session, settings)
    async with db.transaction() as session:
        assert await service.close_batches(session, settings)  # closed, not sent
    events[received] = await fed(received, range(1, 2))  # in the inbox, no record yet
    events[unknown] = [(new_id("evt"), 1)]
    events["rcv_without_events"] = []
    return events


async def test_anchoring_many_answers_as_anchoring_per_receivable_in_one_call(
    ledger_settings: AnchoringSettings, chain: Anvil
):
    events = await a_mix_of_receivables(ledger_settings, chain)
    transport = Counting(httpx.ASGITransport(app=create_ledger(ledger_settings)))
    async with ledger.LedgerClient("http://ledger", transport=transport) as client:
        one_by_one = {rid: await ledger.anchoring(client, rid, evs) for rid, evs in events.items()}
        transport.paths.clear()
        many = await ledger.anchoring_many(client, events)
    assert transport.paths == ["/v1/anchoring/status"]
    assert many == one_by_one
    overall = [status for status, _ in many.values()]
    assert overall == [
        "final",
        "anchored",
        "anchored",
        "pending",
        "pending",
        "pending",
        "pending",
        "pending",
    ]
    every = {e.status for _, items in many.values() for e in items}
    assert every == {"final", "anchored", "pending"}
    anchored_items = [e for _, items in many.values() for e in items if e.status != "pending"]
    assert all(e.tx_hash and e.block_number and e.batch_id for e in anchored_items)


async def test_anchoring_many_is_unknown_for_all_when_the_ledger_is_down():
    events = {
        "rcv_a": [("evt_a1", 1), ("evt_a2", 2)],
        "rcv_b": [("evt_b1", 1)],
        "rcv_c": [],
    }
    async with ledger.LedgerClient("http://ledger", transport=httpx.MockTransport(down)) as client:
        many = await ledger.anchoring_many(client, events)
        one_by_one = {rid: await ledger.anchoring(client, rid, evs) for rid, evs in events.items()}
    assert many == one_by_one
    assert many["rcv_a"] == (
        "unknown",
        [
            ledger.EventAnchoring("evt_a1", 1, "unknown"),
            ledger.EventAnchoring("evt_a2", 2, "unknown"),
        ],
    )
    assert many["rcv_c"] == ("unknown", [])
