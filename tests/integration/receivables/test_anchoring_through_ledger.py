"""Anchoring status and proofs through the real ledger: an uploaded invoice's ``created`` event
goes from the outbox to the ledger's consumer, is batched and anchored on anvil, and the API's
``GET /v1/receivables/{id}`` reads ``pending`` → ``anchored`` → ``final`` (with batch, transaction
and block) from the ledger's own HTTP API (served here over ASGI), and ``/proof`` passes its
bundle through unchanged."""

from __future__ import annotations

from typing import Any

import httpx
from web3 import Web3

from qilian.kit.anvil import Anvil
from services.api.organizations.models import Role
from services.ledger.anchoring import tasks
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.main import create_app as create_ledger
from services.ledger.records.bundle import ProofBundle, all_ok, verify_bundle_offline
from tests.integration.invoices.intake_helpers import invoice_number, new_party, token, ubl
from tests.integration.ledger_app import chain, deliver, ledger_settings

__all__ = ["chain", "ledger_settings"]  # fixtures of the shared ledger app


async def test_status_goes_pending_anchored_final_from_the_ledger(
    http: httpx.AsyncClient, app: Any, ledger_settings: AnchoringSettings, chain: Anvil
):
    app.state.ledger_transport = httpx.ASGITransport(app=create_ledger(ledger_settings))
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    headers = await token(http, supplier)
    created = await http.post(
        "/v1/invoices",
        files={"file": ("i.xml", ubl(supplier, core, number=invoice_number()))},
        headers=headers,
    )
    assert created.status_code == 201
    rid, event_id = created.json()["receivable"]["id"], created.json()["event_id"]

    async def anchoring() -> dict[str, Any]:
        response = await http.get(f"/v1/receivables/{rid}", headers=headers)
        assert response.status_code == 200
        result: dict[str, Any] = response.json()["anchoring"]
        return result

    assert (await anchoring())["status"] == "pending"  # still in the outbox
    await deliver(event_id)
    assert (await anchoring())["status"] == "pending"  # received, not anchored

    await tasks.tick(ledger_settings)
    state = await anchoring()
    assert state["status"] == "anchored", state
    (event,) = state["events"]
    assert event["event_id"] == event_id
    assert event["batch_id"] >= 1
    assert event["tx_hash"].startswith("0x")
    receipt = Web3(Web3.HTTPProvider(chain.rpc_url)).eth.get_transaction_receipt(event["tx_hash"])
    assert receipt["blockNumber"] == event["block_number"]

    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    await tasks.tick(ledger_settings)
    assert (await anchoring())["status"] == "final"

    auditor = await token(http, await new_party(Role.auditor))
    proof = await http.get(
        f"/v1/receivables/{rid}/proof", params={"latest": "true"}, headers=auditor
    )
    assert proof.status_code == 200
    bundle = ProofBundle.model_validate(proof.json()["events"][0]["bundle"])
    assert bundle.record.event_id == event_id
    assert bundle.record.receivable_id == rid
    assert bundle.record.data["sha256"] == created.json()["invoice"]["sha256"]
    assert all_ok(verify_bundle_offline(bundle))
