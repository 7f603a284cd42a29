"""``POST /v1/anchoring/status`` on a real anvil and PostgreSQL: the status of many events in one
query and without proofs — the same status, batch, transaction and block as their proofs show —
unknown events absent, and a ``422`` problem naming ``event_ids`` for a list that is empty, too
long or not of sane strings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from web3 import Web3

from qilian.kit import db
from services.ledger.anchoring import tasks
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.main import create_app
from services.ledger.proofs.schemas import MAX_STATUS_EVENTS
from tests.integration.ledger.conftest import event_payload, feed, new_id
from tests.integration.ledger.test_proofs_api import build_and_close, mine, receivable


@pytest.fixture
async def http(settings: AnchoringSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        yield client


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """The SQL statements the process sends while the test runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engine = db.get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def status_of(http: httpx.AsyncClient, event_ids: list[str]) -> dict[str, Any]:
    response = await http.post("/v1/anchoring/status", json={"event_ids": event_ids})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"events"}
    events: dict[str, Any] = body["events"]
    return events


async def as_proofs_show(http: httpx.AsyncClient, receivable_id: str) -> dict[str, Any]:
    """Each event's status, batch, transaction and block as ``/v1/proofs/receivables`` shows."""
    response = await http.get(f"/v1/proofs/receivables/{receivable_id}")
    assert response.status_code == 200, response.text
    out = {}
    for item in response.json()["events"]:
        bundle = item["bundle"] or {}
        out[item["event_id"]] = {
            "status": item["status"],
            "batch_id": item["batch_id"],
            "tx_hash": bundle.get("tx_hash"),
            "block_number": bundle.get("block_number"),
        }
    return out


async def test_statuses_of_final_anchored_and_pending_events_in_one_query(
    settings: AnchoringSettings,
    http: httpx.AsyncClient,
    w3: Web3,
    statements: list[str],
):
    a, a_events = await receivable(2)
    b, b_events = await receivable(1)
    assert (await tasks.tick(settings)).sent == [1]
    mine(w3)
    await tasks.tick(settings)  # batch 1 final
    c, c_events = await receivable(1)
    a_events.append(await feed(event_payload(a, 3)))
    assert (await tasks.tick(settings)).sent == [2]  # batch 2 anchored
    d, d_events = await receivable(1)
    assert await build_and_close(settings) == [3]  # batch 3 closed, not sent: pending
    _, (inbox_only,) = await receivable(1)  # received, no record yet
    unknown = new_id("evt")

    asked = [*a_events, *b_events, *c_events, *d_events, inbox_only, unknown, a_events[0]]
    statements.clear()
    known = await status_of(http, asked)
    reads = [s for s in statements if "ledger." in s]
    assert len(reads) == 1, reads
    assert "dump" not in reads[0]  # no tree loaded, no proof built
    assert "record_hash" not in reads[0]

    assert set(known) == {*a_events, *b_events, *c_events, *d_events}
    statuses = {eid: known[eid]["status"] for eid in known}
    assert [statuses[e] for e in a_events] == ["final", "final", "anchored"]
    assert statuses[b_events[0]] == "final"
    assert statuses[c_events[0]] == "anchored"
    assert known[d_events[0]] == {
        "status": "pending",
        "batch_id": 3,
        "tx_hash": None,
        "block_number": None,
    }
    assert known[a_events[2]]["batch_id"] == 2
    assert known[a_events[2]]["tx_hash"].startswith("0x")
    receipt = w3.eth.get_transaction_receipt(known[a_events[2]]["tx_hash"])
    assert receipt["blockNumber"] == known[a_events[2]]["block_number"]

    # exactly what the proofs of each receivable show, without building them
    for rid in (a, b, c, d):
        shown = await as_proofs_show(http, rid)
        assert {eid: known[eid] for eid in shown} == shown


async def test_only_unknown_events_is_an_empty_answer(http: httpx.AsyncClient):
    assert await status_of(http, [new_id("evt"), new_id("evt")]) == {}
    assert len(await status_of(http, [new_id("evt") for _ in range(MAX_STATUS_EVENTS)])) == 0


def problem_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://qilian.dev/problems/invalid-input"
    assert body["status"] == 422
    return [e["field"] for e in body["errors"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_ids": []}, "event_ids"),
        ({"event_ids": [f"evt_{n}" for n in range(MAX_STATUS_EVENTS + 1)]}, "event_ids"),
        ({"event_ids": ["evt_1", 7]}, "event_ids.1"),
        ({"event_ids": [""]}, "event_ids.0"),
        ({"event_ids": ["x" * 129]}, "event_ids.0"),
        ({"event_ids": "evt_1"}, "event_ids"),
        ({}, "event_ids"),
    ],
    ids=["empty", "501 ids", "not a string", "empty string", "too long", "not a list", "missing"],
)
async def test_a_bad_list_is_a_422_problem_naming_event_ids(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
):
    response = await http.post("/v1/anchoring/status", json=body)
    fields = problem_fields(response)
    assert fields == [field]
    assert "event_ids" in response.json()["detail"]
