"""Reading receivables: only parties see one (404 for everyone else), lists are scoped and
filtered, events are contiguous under concurrency, anchoring status and proofs come from the
ledger's HTTP API and a ledger that is down never breaks the read."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from qilian.kit import db
from qilian.kit.money import Money
from services.api.audit.service import Actor
from services.api.invoices import service as intake
from services.api.invoices.blobs import LocalBlobStore
from services.api.invoices.settings import IntakeSettings
from services.api.organizations.models import Organization, Role
from services.api.receivables import repository
from services.api.receivables import service as receivables
from services.ledger.anchoring.service import validate_payload
from tests.integration.invoices.intake_helpers import (
    invoice_number,
    new_party,
    token,
    ubl,
)


async def create(http: Any, supplier: Any, core: Any, **kw: Any) -> dict[str, Any]:
    data = ubl(supplier, core, number=invoice_number(), **kw)
    response = await http.post(
        "/v1/invoices", files={"file": ("i.xml", data)}, headers=await token(http, supplier)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def parties(db_engine: None) -> dict[str, Any]:
    return {
        "supplier": await new_party(Role.supplier),
        "core": await new_party(Role.core_firm),
        "bank": await new_party(Role.bank),
        "other": await new_party(Role.supplier),
        "auditor": await new_party(Role.auditor),
    }


async def test_only_parties_see_a_receivable(http, parties):
    created = await create(http, parties["supplier"], parties["core"])
    rid = created["receivable"]["id"]
    for who in ("supplier", "core"):
        response = await http.get(f"/v1/receivables/{rid}", headers=await token(http, parties[who]))
        assert response.status_code == 200, who
        listed = await http.get("/v1/receivables", headers=await token(http, parties[who]))
        assert rid in {r["id"] for r in listed.json()["items"]}
    for who in ("bank", "other", "auditor"):
        headers = await token(http, parties[who])
        response = await http.get(f"/v1/receivables/{rid}", headers=headers)
        assert response.status_code == 404, who
        assert response.headers["content-type"] == "application/problem+json"
        listed = await http.get("/v1/receivables", headers=headers)
        assert listed.json()["items"] == []
    for who in ("bank", "other"):
        headers = await token(http, parties[who])
        assert (await http.get(f"/v1/receivables/{rid}/events", headers=headers)).status_code == 404
        assert (await http.get(f"/v1/receivables/{rid}/proof", headers=headers)).status_code == 404


async def test_auditor_reads_events(http, parties):
    created = await create(http, parties["supplier"], parties["core"])
    rid = created["receivable"]["id"]
    response = await http.get(
        f"/v1/receivables/{rid}/events", headers=await token(http, parties["auditor"])
    )
    assert response.status_code == 200
    (event,) = response.json()
    assert event["event_id"] == created["event_id"]
    assert event["seq"] == 1
    assert event["type"] == "created"
    assert event["at"].endswith("Z")
    payload = {k: event[k] for k in ("receivable_id", "seq", "type", "at", "actor", "data")}
    assert validate_payload(event["event_id"], "receivable.event", payload) is None


async def test_list_filters_and_pagination(http, parties):
    supplier, core = parties["supplier"], parties["core"]
    ids = [
        (await create(http, supplier, core, due=f"2026-03-{day:02d}"))["receivable"]["id"]
        for day in (10, 20, 30)
    ]
    headers = await token(http, core)
    page = await http.get("/v1/receivables", params={"limit": 2, "as": "debtor"}, headers=headers)
    body = page.json()
    assert len(body["items"]) == 2
    assert body["next_cursor"]
    rest = await http.get(
        "/v1/receivables",
        params={"limit": 2, "as": "debtor", "cursor": body["next_cursor"]},
        headers=headers,
    )
    seen = {r["id"] for r in body["items"]} | {r["id"] for r in rest.json()["items"]}
    assert seen == set(ids)
    due = await http.get(
        "/v1/receivables",
        params={"due_from": "2026-03-15", "due_to": "2026-03-25"},
        headers=headers,
    )
    assert [r["id"] for r in due.json()["items"]] == [ids[1]]
    creditor_only = await http.get("/v1/receivables", params={"as": "creditor"}, headers=headers)
    assert creditor_only.json()["items"] == []
    confirmed = await http.get(
        "/v1/receivables", params={"confirmation": "confirmed"}, headers=headers
    )
    assert confirmed.json()["items"] == []
    pv = await http.get("/v1/receivables", params={"cluster": "pv"}, headers=headers)
    assert len(pv.json()["items"]) == 3


async def test_anchoring_is_unknown_when_the_ledger_is_down(http, parties):
    created = await create(http, parties["supplier"], parties["core"])
    response = await http.get(
        f"/v1/receivables/{created['receivable']['id']}",
        headers=await token(http, parties["supplier"]),
    )
    assert response.status_code == 200
    anchoring = response.json()["anchoring"]
    assert anchoring["status"] == "unknown"
    assert anchoring["events"][0]["status"] == "unknown"
    proof = await http.get(
        f"/v1/receivables/{created['receivable']['id']}/proof",
        headers=await token(http, parties["supplier"]),
    )
    assert proof.status_code == 503


def ledger_answering(rid: str, events: list[dict[str, Any]] | None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v1/proofs/receivables/{rid}"
        if events is None:
            return httpx.Response(404, json={"status": 404, "title": "Not found"})
        latest = request.url.params.get("latest") == "true"
        shown = events[-1:] if latest else events
        return httpx.Response(
            200, json={"receivable_id": rid, "all_anchored": False, "events": shown}
        )

    return httpx.MockTransport(handler)


async def test_anchoring_status_from_the_ledger(http, app, parties):
    supplier, core = parties["supplier"], parties["core"]
    created = await create(http, supplier, core, payable="500.00", total="500.00")
    rid, first = created["receivable"]["id"], created["event_id"]
    headers = await token(http, supplier)

    app.state.ledger_transport = ledger_answering(rid, None)  # not received by the ledger yet
    body = (await http.get(f"/v1/receivables/{rid}", headers=headers)).json()
    assert body["anchoring"]["status"] == "pending"
    assert (await http.get(f"/v1/receivables/{rid}/proof", headers=headers)).status_code == 409

    # a second event that the ledger has not seen yet
    async with db.transaction() as session:
        await receivables.dilute(session, rid, Money.of("100.00", "EUR"), core.org.id, {})
    bundle = {"tx_hash": "0x" + "ab" * 32, "block_number": 42, "batch_id": 7}
    app.state.ledger_transport = ledger_answering(
        rid,
        [
            {
                "seq": 1,
                "event_id": first,
                "status": "final",
                "batch_id": 7,
                "entry_id": "0x" + "11" * 32,
                "record_hash": "0x" + "22" * 32,
                "bundle": bundle,
            }
        ],
    )
    body = (await http.get(f"/v1/receivables/{rid}", headers=headers)).json()
    events = body["anchoring"]["events"]
    assert events[0] == {
        "event_id": first,
        "seq": 1,
        "status": "final",
        "batch_id": 7,
        "tx_hash": "0x" + "ab" * 32,
        "block_number": 42,
    }
    assert events[1]["status"] == "pending"
    assert body["anchoring"]["status"] == "pending"

    auditor = await token(http, parties["auditor"])
    proof = await http.get(
        f"/v1/receivables/{rid}/proof", params={"latest": "true"}, headers=auditor
    )
    assert proof.status_code == 200
    assert proof.json()["events"][0]["bundle"] == bundle


async def test_fifty_concurrent_events_get_contiguous_seqs(parties, tmp_path):
    supplier, core = parties["supplier"], parties["core"]
    async with db.transaction() as session:
        organization = await session.get(Organization, supplier.org.id)
        assert organization is not None
        uploader = intake.Uploader(organization, Actor("client", supplier.org.client_id))
        result = await intake.intake(
            session,
            uploader,
            ubl(supplier, core, number=invoice_number(), payable="100.00", total="100.00"),
            store=LocalBlobStore(tmp_path),
            config=IntakeSettings(),
        )
    rid = result.receivable.id

    async def one() -> None:
        async with db.transaction() as session:
            await receivables.dilute(session, rid, Money.of("1.00", "EUR"), core.org.id, {})

    await asyncio.gather(*(one() for _ in range(50)))
    async with db.transaction() as session:
        events = await repository.events(session, rid)
        row = await repository.get(session, rid)
    assert [e.seq for e in events] == list(range(1, 52))
    assert row is not None
    assert row.event_seq == 51
    assert row.open_amount_minor == 5000
