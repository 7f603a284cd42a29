"""The ledger's read-only registry endpoints over HTTP: an operation, a financing's operations and
a fingerprint's status read from the chain — public like the proofs; unknown ids are 404 and a
malformed fingerprint 422, as problem+json naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.main import create_app
from services.ledger.registry.chain import RegistryChain
from tests.integration.ledger.test_registry_operations import (
    clean,
    deliver,
    invoice,
    new_id,
    operation,
    registry,
    registry_settings,
    request,
    settle,
    values,
)

__all__ = ["clean", "registry", "registry_settings"]  # fixtures shared with the operations tests

PROBLEM = "application/problem+json"


@pytest.fixture
async def http(registry_settings: AnchoringSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(registry_settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        yield client


async def test_a_bank_reads_the_operation_the_financing_and_the_status_on_chain(
    registry_settings: AnchoringSettings, registry: RegistryChain, http: httpx.AsyncClient
):
    fingerprint = invoice()
    register = request("register", new_id("fin"), fingerprint)
    await deliver(register)
    pending = await http.get(f"/v1/registry/operations/{register['operation_id']}")
    assert pending.status_code == 200
    assert pending.json()["state"] == "pending"
    assert pending.json()["tx_hash"] is None
    await settle(registry_settings)

    response = await http.get(f"/v1/registry/operations/{register['operation_id']}")
    assert response.status_code == 200
    body = response.json()
    row = await operation(register["operation_id"])
    assert body["state"] == "done"
    assert body["error"] is None
    assert body["tx_hash"] == row.tx_hash
    assert body["block_number"] == row.block_number
    assert body["fingerprint"] == values(register).fingerprint
    assert body["financing_ref"] == values(register).financing_ref
    assert body["contract"] == registry.address.lower()
    assert body["financing_id"] == register["financing_id"]

    release = request(
        "release",
        register["financing_id"],
        fingerprint,
        receivable_id=register["receivable_id"],
        reason=1,
    )
    await deliver(release)
    status = await http.get(f"/v1/registry/status/{values(register).fingerprint}")
    assert status.status_code == 200
    assert status.json() == {
        "chain_id": registry_settings.chain_id,
        "contract": registry.address,
        "fingerprint": values(register).fingerprint,
        "active": True,
        "financing_ref": values(register).financing_ref,
        "since": registry.status(values(register).fingerprint).since,
    }
    await settle(registry_settings)

    financing = await http.get(f"/v1/registry/financings/{register['financing_id']}")
    assert financing.status_code == 200
    ops = financing.json()["operations"]
    assert [(o["action"], o["state"]) for o in ops] == [("register", "done"), ("release", "done")]
    assert ops[1]["reason"] == 1
    after = await http.get(f"/v1/registry/status/{values(register).fingerprint.upper()[2:]}")
    assert after.status_code == 422  # no 0x prefix
    released = await http.get(f"/v1/registry/status/{values(register).fingerprint}")
    assert released.json()["active"] is False
    assert released.json()["financing_ref"] is None


async def test_what_the_ledger_does_not_know_is_404_problem_json(http: httpx.AsyncClient):
    for path in ("/v1/registry/operations/rop_unknown", "/v1/registry/financings/fin_unknown"):
        response = await http.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["type"] == "https://qilian.dev/problems/not-found"


async def test_a_malformed_fingerprint_is_422_naming_the_field(http: httpx.AsyncClient):
    response = await http.get("/v1/registry/status/0x1234")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    assert [e["field"] for e in response.json()["errors"]] == ["fingerprint"]


async def test_an_unknown_fingerprint_reads_as_not_active(http: httpx.AsyncClient):
    response = await http.get("/v1/registry/status/0x" + "ab" * 32)
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert response.json()["since"] is None


async def test_status_without_a_reachable_chain_is_503(
    registry_settings: AnchoringSettings,
):
    down = registry_settings.model_copy(update={"rpc_url": "http://127.0.0.1:9"})
    transport = httpx.ASGITransport(app=create_app(down))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        response = await client.get("/v1/registry/status/0x" + "ab" * 32)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM)
