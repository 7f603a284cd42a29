"""A small market for the marketplace tests: parties, confirmed receivables due in the future,
requests, offers — all through the public API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from tests.integration.invoices.intake_helpers import Party
from tests.integration.receivables.lifecycle_helpers import call, confirmed

DUE = (date.today() + timedelta(days=90)).isoformat()
ISSUED = (date.today() - timedelta(days=5)).isoformat()


@dataclass
class Market:
    supplier: Party
    other_supplier: Party
    core: Party
    banks: list[Party]


def closes_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def receivable(
    http: httpx.AsyncClient, market: Market, payable: str = "10000.00", due: str = DUE
) -> str:
    return await confirmed(
        http, market.supplier, market.core, payable=payable, issue=ISSUED, due=due
    )


async def open_request(
    http: httpx.AsyncClient,
    market: Market,
    receivable_ids: list[str],
    *,
    seconds: float = 3600,
    **extra: Any,
) -> dict[str, Any]:
    response = await call(
        http,
        market.supplier,
        "POST",
        "/v1/financing-requests",
        {"receivable_ids": receivable_ids, "closes_at": closes_in(seconds), **extra},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def terms(
    advance: str = "0.90",
    rate: str = "0.0500",
    fee: str = "10.00",
    day_count: str = "ACT/360",
    recourse: bool = True,
    currency: str = "EUR",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "advance_rate": advance,
        "annual_rate": rate,
        "fee": {"amount": fee, "currency": currency},
        "day_count": day_count,
        "recourse": recourse,
        **extra,
    }


async def bid(http: httpx.AsyncClient, bank: Party, request_id: str, **kw: Any) -> httpx.Response:
    return await call(
        http, bank, "POST", f"/v1/financing-requests/{request_id}/offers", terms(**kw)
    )


async def offer(http: httpx.AsyncClient, bank: Party, request_id: str, **kw: Any) -> dict[str, Any]:
    response = await bid(http, bank, request_id, **kw)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def accept(http: httpx.AsyncClient, market: Market, offer_id: str) -> httpx.Response:
    return await call(http, market.supplier, "POST", f"/v1/offers/{offer_id}/accept")
