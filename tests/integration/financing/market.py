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


async def registry_answers(
    financing_id: str, outcome: str = "done", error: str | None = None, action: str = "register"
) -> int:
    """Answer the financing's pending registry operations as the ledger does: through the
    outbox consumer ``financing.apply_registry_result``, with the payload the ledger sends."""
    from sqlmodel import col, select

    from qilian.kit import db, ids, outbox, tasks
    from qilian.kit.outbox import Envelope
    from services.api.financing import tasks as financing_tasks
    from services.api.financing.models import RegistryOperation

    async with db.transaction() as session:
        ops = (
            await session.execute(
                select(RegistryOperation).where(
                    col(RegistryOperation.financing_id) == financing_id,
                    col(RegistryOperation.action) == action,
                    col(RegistryOperation.outcome).is_(None),
                )
            )
        ).scalars()
        pending = [op.operation_id for op in ops]
        receivables = {op.operation_id: op.receivable_id for op in ops}
    for operation_id in pending:
        envelope = Envelope(
            event_id=ids.new_id("evt"),
            topic="financing.registry_result",
            payload={
                "operation_id": operation_id,
                "action": action,
                "financing_id": financing_id,
                "receivable_id": receivables.get(operation_id),
                "outcome": outcome,
                "error": error,
                "fingerprint": "0x" + "ab" * 32,
                "financing_ref": "0x" + "cd" * 32,
                "tx_hash": "0x" + "ef" * 32 if outcome == "done" else None,
                "block_number": 7 if outcome == "done" else None,
            },
        )
        async with db.transaction() as session:  # the ledger's side: the result in the outbox
            await outbox.emit(session, envelope.topic, envelope.payload, event_id=envelope.event_id)
        await tasks.apply_batch([envelope], financing_tasks.apply_registry_result.handler)
    return len(pending)
