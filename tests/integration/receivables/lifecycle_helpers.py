"""Shared by the lifecycle tests: receivables created through intake, confirmed by their debtor,
and requests as a party."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.invoices.intake_helpers import Party, invoice_number, token, ubl

ANCHOR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN_ID = 31337


def chain_ledger(request: httpx.Request) -> httpx.Response:
    """A ledger that answers only ``GET /v1/chain``."""
    if request.url.path == "/v1/chain":
        contracts = {"ReceivableAnchor": ANCHOR}
        return httpx.Response(200, json={"chain_id": CHAIN_ID, "contracts": contracts})
    raise httpx.ConnectError("ledger down (test)", request=request)


async def upload(
    http: httpx.AsyncClient, supplier: Party, core: Party, **kw: Any
) -> dict[str, Any]:
    data = ubl(supplier, core, number=invoice_number(), **kw)
    response = await http.post(
        "/v1/invoices", files={"file": ("i.xml", data)}, headers=await token(http, supplier)
    )
    assert response.status_code == 201, response.text
    receivable: dict[str, Any] = response.json()["receivable"]
    return receivable


async def call(
    http: httpx.AsyncClient, party: Party, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await http.request(method, path, json=body, headers=await token(http, party))


async def confirmed(http: httpx.AsyncClient, supplier: Party, core: Party, **kw: Any) -> str:
    rid: str = (await upload(http, supplier, core, **kw))["id"]
    response = await call(http, core, "POST", f"/v1/receivables/{rid}/confirm", {})
    assert response.status_code == 200, response.text
    return rid


async def events(http: httpx.AsyncClient, party: Party, rid: str) -> list[dict[str, Any]]:
    response = await call(http, party, "GET", f"/v1/receivables/{rid}/events")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body
