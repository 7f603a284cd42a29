"""``GET /v1/chain``: the chain id and contract addresses the ledger anchors with (the API reads the
EIP-712 domain of confirmation signatures from it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.main import create_app


@pytest.fixture
async def http(settings: AnchoringSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        yield client


async def test_chain_lists_the_chain_id_and_the_anchor_address(
    settings: AnchoringSettings, http: httpx.AsyncClient
):
    response = await http.get("/v1/chain")
    assert response.status_code == 200
    body = response.json()
    assert body["chain_id"] == settings.chain_id
    assert body["contracts"]["ReceivableAnchor"] == settings.anchor_address
