"""The ledger's auditor endpoints on a real anvil and PostgreSQL: bundles only once anchored
(hashes only before, as a 409 problem), every event of a receivable in seq order, the newest
alone, batches, and ``POST /v1/verify`` reporting every step against the chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from web3 import Web3

from qilian.kit import db
from services.ledger.anchoring import service, tasks
from services.ledger.anchoring.chain import AnchorChain
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.main import create_app
from services.ledger.records.bundle import ProofBundle, all_ok, verify_bundle_offline
from services.ledger.records.keccak import from_hex
from services.ledger.records.verification import BUNDLE_STEPS
from tests.integration.ledger.conftest import event_payload, feed, new_id, rows


@pytest.fixture
async def http(settings: AnchoringSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        yield client


async def receivable(events: int = 3) -> tuple[str, list[str]]:
    rid = new_id("rcv")
    return rid, [await feed(event_payload(rid, seq)) for seq in range(1, events + 1)]


async def build_and_close(settings: AnchoringSettings) -> list[int]:
    async with db.transaction() as session:
        await service.build_records(session, settings)
    async with db.transaction() as session:
        return await service.close_batches(session, settings)


async def anchored(settings: AnchoringSettings) -> None:
    report = await tasks.tick(settings)
    assert report.sent
    assert not await rows("SELECT 1 FROM ledger.batches WHERE status IN ('pending', 'sent')")


def mine(w3: Web3) -> None:
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


async def test_an_event_not_yet_anchored_is_a_409_problem_with_its_hashes_only(
    settings: AnchoringSettings, http: httpx.AsyncClient
):
    rid, (first, *_) = await receivable()
    # received, not yet a record
    waiting = await http.get(f"/v1/proofs/events/{first}")
    assert waiting.status_code == 409
    assert waiting.headers["content-type"] == "application/problem+json"
    assert waiting.headers["retry-after"] == "2"
    assert waiting.json()["anchor_status"] == "pending"
    assert "record_hash" not in waiting.json()

    assert await build_and_close(settings) == [1]
    (record,) = await rows(
        "SELECT record_hash, entry_id, record FROM ledger.records WHERE event_id = :e", e=first
    )
    pending = await http.get(f"/v1/proofs/events/{first}")
    assert pending.status_code == 409
    body = pending.json()
    assert body["type"] == "https://qilian.dev/problems/not-anchored-yet"
    assert body["status"] == 409
    assert (body["event_id"], body["anchor_status"], body["batch_id"]) == (first, "pending", 1)
    assert (body["record_hash"], body["entry_id"]) == (record.record_hash, record.entry_id)
    # nothing of the record itself: no salt, no prev, no data
    text_body = pending.text
    for secret in (record.record["salt"], "1234.50", "org_core"):
        assert secret not in text_body

    listing = await http.get(f"/v1/proofs/receivables/{rid}")
    assert listing.status_code == 200
    proofs = listing.json()
    assert proofs["all_anchored"] is False
    assert [(e["seq"], e["status"], e["bundle"]) for e in proofs["events"]] == [
        (1, "pending", None),
        (2, "pending", None),
        (3, "pending", None),
    ]
    assert record.record["salt"] not in listing.text

    batch = (await http.get("/v1/anchors/1")).json()
    assert batch["status"] == "pending"
    assert (batch["leaf_count"], batch["tx_hash"], batch["block_number"]) == (3, None, None)


async def test_anchored_events_have_bundles_that_verify_offline_and_on_chain(
    settings: AnchoringSettings, http: httpx.AsyncClient, anchor: AnchorChain, w3: Web3
):
    rid, events = await receivable(3)
    await receivable(2)  # another receivable in the same batch
    await anchored(settings)

    response = await http.get(f"/v1/proofs/events/{events[1]}")
    assert response.status_code == 200
    assert response.headers["qilian-anchor-status"] == "anchored"
    bundle = ProofBundle.model_validate(response.json())
    assert set(response.json()) == set(ProofBundle.model_fields)
    assert bundle.record.event_id == events[1]
    assert bundle.record.seq == 2
    assert all_ok(verify_bundle_offline(bundle))
    assert (bundle.chain_id, bundle.contract) == (settings.chain_id, anchor.address.lower())
    assert len(bundle.proof) >= 2  # five leaves
    ok, _, block = anchor.verify_entry(
        bundle.batch_id,
        from_hex(bundle.entry_id),
        from_hex(bundle.record_hash),
        [from_hex(p) for p in bundle.proof],
    )
    assert ok
    assert block == bundle.block_number

    everything = (await http.get(f"/v1/proofs/receivables/{rid}")).json()
    assert everything["all_anchored"] is True
    assert [e["seq"] for e in everything["events"]] == [1, 2, 3]
    assert [e["event_id"] for e in everything["events"]] == events
    assert {e["status"] for e in everything["events"]} == {"anchored"}
    bundles = [ProofBundle.model_validate(e["bundle"]) for e in everything["events"]]
    assert bundles[1] == bundle
    assert bundles[0].record.prev is None
    assert bundles[1].record.prev == bundles[0].record_hash
    assert bundles[2].record.prev == bundles[1].record_hash

    newest = (await http.get(f"/v1/proofs/receivables/{rid}", params={"latest": "true"})).json()
    assert [e["seq"] for e in newest["events"]] == [3]
    assert newest["events"][0]["bundle"] == everything["events"][2]["bundle"]

    info = (await http.get(f"/v1/anchors/{bundle.batch_id}")).json()
    on_chain = anchor.batch(bundle.batch_id)
    assert info["root"] == bundle.root == "0x" + on_chain.root.hex()
    assert info["leaf_count"] == on_chain.count == 5
    assert (info["chain_id"], info["contract"], info["tx_hash"]) == (
        bundle.chain_id,
        bundle.contract,
        bundle.tx_hash,
    )
    assert info["block_number"] == on_chain.block_number == bundle.block_number
    assert info["status"] == "anchored"
    assert info["anchored_at"] is not None

    mine(w3)
    await tasks.tick(settings)
    final = await http.get(f"/v1/proofs/events/{events[1]}")
    assert final.headers["qilian-anchor-status"] == "final"
    assert final.json() == response.json()
    assert (await http.get(f"/v1/anchors/{bundle.batch_id}")).json()["status"] == "final"


async def test_unknown_refused_and_malformed_ids(
    settings: AnchoringSettings, http: httpx.AsyncClient
):
    unknown = await http.get(f"/v1/proofs/events/{new_id('evt')}")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert (await http.get(f"/v1/proofs/receivables/{new_id('rcv')}")).status_code == 404
    assert (await http.get("/v1/anchors/999")).status_code == 404
    assert (await http.get("/v1/anchors/0")).status_code == 422
    assert (await http.get(f"/v1/anchors/{2**64}")).status_code == 422
    assert (await http.get("/v1/proofs/events/" + "e" * 129)).status_code == 422

    refused = await feed(event_payload(new_id("rcv"), 1, data={"amount": 1.5}))
    await build_and_close(settings)
    response = await http.get(f"/v1/proofs/events/{refused}")
    assert response.status_code == 404
    assert response.json()["anchor_status"] == "rejected"


async def test_a_stored_record_altered_in_the_database_is_refused_not_served(
    settings: AnchoringSettings, http: httpx.AsyncClient
):
    _, (event,) = await receivable(1)
    await receivable(1)
    await anchored(settings)
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE ledger.records SET record = jsonb_set(record, '{data,amount}', '\"9.99\"')"
                " WHERE event_id = :e"
            ),
            {"e": event},
        )
    response = await http.get(f"/v1/proofs/events/{event}")
    assert response.status_code == 500
    assert response.json()["type"] == "https://qilian.dev/problems/stored-proof-invalid"
    assert "9.99" not in response.text


def steps(report: dict[str, Any], index: int = 0) -> dict[str, str]:
    return {step["name"]: step["status"] for step in report["bundles"][index]["steps"]}


async def test_verify_reports_every_step_and_the_prev_chain(
    settings: AnchoringSettings, http: httpx.AsyncClient
):
    rid, _ = await receivable(3)
    await receivable(2)
    await anchored(settings)
    proofs = (await http.get(f"/v1/proofs/receivables/{rid}")).json()
    bundles = [e["bundle"] for e in proofs["events"]]

    report = (await http.post("/v1/verify", json=bundles)).json()
    assert report["ok"] is True, json.dumps(report, indent=1)
    assert report["rpc_chain_id"] == settings.chain_id
    for index in range(3):
        assert list(steps(report, index)) == list(BUNDLE_STEPS)
        assert set(steps(report, index).values()) == {"ok"}
        assert report["bundles"][index]["anchored_at"].endswith("Z")
    (history,) = report["histories"]
    assert history["receivable_id"] == rid
    assert history["seqs"] == [1, 2, 3]
    assert history["ok"] is True

    # the receivable response itself, and a single bundle, are accepted as they are
    assert (await http.post("/v1/verify", json=proofs)).json()["ok"] is True
    single = (await http.post("/v1/verify", json=bundles[2])).json()
    assert single["ok"] is True
    assert single["histories"] == []

    altered = json.loads(json.dumps(bundles[1]))
    altered["record"]["data"]["amount"] = "1.00"
    report = (await http.post("/v1/verify", json=[bundles[0], altered, bundles[2]])).json()
    assert report["ok"] is False
    failed = steps(report, 1)
    assert failed["record_hash"] == "failed"
    assert failed["merkle_proof"] == "failed"
    assert failed["onchain_root"] == "failed"
    assert failed["verify_entry"] == "failed"
    assert report["bundles"][0]["ok"] is True
    # seq 3's prev no longer matches the altered seq 2
    (history,) = report["histories"]
    assert history["ok"] is False
    assert [s["status"] for s in history["steps"]] == ["ok", "ok", "failed"]

    gap = (await http.post("/v1/verify", json=[bundles[0], bundles[2]])).json()
    assert gap["ok"] is False
    assert gap["histories"][0]["steps"][-1]["status"] == "failed"

    other = dict(bundles[0], contract="0x" + "11" * 20)
    report = (await http.post("/v1/verify", json=other)).json()
    assert report["ok"] is False
    assert steps(report)["contract"] == "failed"
    assert steps(report)["onchain_root"] == "skipped"

    wrong_chain = dict(bundles[0], chain_id=1)
    assert steps((await http.post("/v1/verify", json=wrong_chain)).json())["chain_id"] == "failed"

    garbage = (await http.post("/v1/verify", json={"format": "qilian-proof/1"})).json()
    assert garbage["ok"] is False
    assert steps(garbage)["bundle_format"] == "failed"
    assert set(list(steps(garbage).values())[1:]) == {"skipped"}


async def test_verify_refuses_empty_and_oversized_requests(http: httpx.AsyncClient):
    assert (await http.post("/v1/verify", json=[])).status_code == 422
    assert (await http.post("/v1/verify", content=b"not json")).status_code == 422
    too_many = await http.post("/v1/verify", json=[{}] * 101)
    assert too_many.status_code == 413
