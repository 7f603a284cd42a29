"""``anchoring_many`` against a scripted ledger: one call per 500 distinct events, the ledger's
answer read per event, and ``unknown`` for all on any answer that is not a status list."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from services.api.receivables import ledger
from services.api.receivables.ledger import EventAnchoring


def ledger_of(
    answer: Callable[[list[str]], httpx.Response],
) -> tuple[ledger.LedgerClient, list[list[str]]]:
    asked: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/v1/anchoring/status")
        ids = json.loads(request.content)["event_ids"]
        asked.append(ids)
        return answer(ids)

    return ledger.LedgerClient("http://ledger", transport=httpx.MockTransport(handler)), asked


def all_final(ids: list[str]) -> httpx.Response:
    status = {"status": "final", "batch_id": 1, "tx_hash": "0xab", "block_number": 9}
    return httpx.Response(200, json={"events": dict.fromkeys(ids, status)})


async def test_one_call_per_500_distinct_events():
    events = {f"rcv_{r}": [(f"evt_{r}_{s}", s) for s in range(1, 13)] for r in range(100)}
    events["rcv_again"] = events["rcv_0"]  # the same events twice are asked once
    client, asked = ledger_of(all_final)
    many = await ledger.anchoring_many(client, events)
    assert [len(ids) for ids in asked] == [500, 500, 200]
    assert len({i for ids in asked for i in ids}) == 1200
    assert set(many) == set(events)
    assert all(status == "final" for status, _ in many.values())
    assert many["rcv_again"] == many["rcv_0"]


async def test_the_ledgers_answer_per_event():
    def answer(ids: list[str]) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "events": {
                    "evt_1": {
                        "status": "final",
                        "batch_id": 4,
                        "tx_hash": "0x1",
                        "block_number": 7,
                    },
                    "evt_2": {
                        "status": "anchored",
                        "batch_id": 5,
                        "tx_hash": "0x2",
                        "block_number": 8,
                    },
                    "evt_3": {
                        "status": "pending",
                        "batch_id": 6,
                        "tx_hash": None,
                        "block_number": None,
                    },
                    "evt_4": {"status": "rewritten", "batch_id": 6},
                    "evt_5": "not an object",
                }
            },
        )

    client, asked = ledger_of(answer)
    many = await ledger.anchoring_many(
        client,
        {
            "rcv_a": [("evt_1", 1), ("evt_2", 2)],
            "rcv_b": [("evt_3", 1), ("evt_4", 2), ("evt_5", 3), ("evt_6", 4)],
        },
    )
    assert len(asked) == 1
    assert many["rcv_a"] == (
        "anchored",
        [
            EventAnchoring("evt_1", 1, "final", 4, "0x1", 7),
            EventAnchoring("evt_2", 2, "anchored", 5, "0x2", 8),
        ],
    )
    assert many["rcv_b"] == (
        "pending",
        [
            EventAnchoring("evt_3", 1, "pending", 6, None, None),
            EventAnchoring("evt_4", 2, "pending"),
            EventAnchoring("evt_5", 3, "pending"),
            EventAnchoring("evt_6", 4, "pending"),
        ],
    )


async def test_no_event_no_call():
    client, asked = ledger_of(all_final)
    assert await ledger.anchoring_many(client, {"rcv_a": []}) == {"rcv_a": ("pending", [])}
    assert await ledger.anchoring_many(client, {}) == {}
    assert asked == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, json={"status": 503}),
        httpx.Response(200, text="<html>proxy</html>"),
        httpx.Response(404, json={"status": 404}),  # a ledger without the route
        httpx.Response(422, json={"status": 422}),
        httpx.Response(200, json={"events": ["evt_1"]}),
    ],
    ids=["5xx", "not JSON", "no such route", "refused", "not a status list"],
)
async def test_unknown_for_all_when_the_ledger_does_not_answer_a_status_list(
    failure: httpx.Response,
):
    events = {f"rcv_{r}": [(f"evt_{r}_{s}", s) for s in range(1, 6)] for r in range(250)}
    calls = 0

    def answer(ids: list[str]) -> httpx.Response:
        nonlocal calls
        calls += 1
        return all_final(ids) if calls == 1 else failure  # the second call fails

    client, asked = ledger_of(answer)
    many = await ledger.anchoring_many(client, events)
    assert len(asked) == 2  # no third call once the ledger failed
    assert {status for status, _ in many.values()} == {"unknown"}
    assert all(e.status == "unknown" for _, items in many.values() for e in items)
    assert many["rcv_0"][1][0] == EventAnchoring("evt_0_1", 1, "unknown")
