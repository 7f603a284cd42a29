"""The real ledger app for api tests: a fresh anvil per module, a fresh ``ReceivableAnchor`` and
empty ledger tables per test, settings to serve it over ASGI, a transport that counts the
requests the api makes of it, and delivery of the api's outbox rows to its consumer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select, text
from sqlmodel import col
from web3 import Web3

from qilian.kit import db
from qilian.kit.anvil import DEV_PRIVATE_KEY, Anvil
from qilian.kit.outbox import Envelope, OutboxEvent
from qilian.kit.settings import get_settings
from services.ledger.anchoring.settings import AnchoringSettings, anchoring_settings
from services.ledger.chain.artifacts import deploy_contract
from services.ledger.ingest.tasks import ingest_receivable_event

ANCHORER = Web3.to_checksum_address(Account.from_key(DEV_PRIVATE_KEY).address)


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


@pytest.fixture
async def ledger_settings(chain: Anvil, db_engine: None) -> AnchoringSettings:
    async with db.transaction() as session:  # the ledger's state is this test's alone
        await session.execute(
            text("TRUNCATE ledger.records, ledger.batches, ledger.accounts, ledger.event_inbox")
        )
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    address, _ = deploy_contract(w3, "ReceivableAnchor", DEV_PRIVATE_KEY, ANCHORER)
    return anchoring_settings(get_settings()).model_copy(
        update={
            "rpc_url": chain.rpc_url,
            "anchor_address": address,
            "batch_max_wait_seconds": 0.0,
            "confirmations": 2,
            "receipt_wait_seconds": 2.0,
        }
    )


def mine(chain: Anvil) -> None:
    Web3(Web3.HTTPProvider(chain.rpc_url)).provider.make_request("evm_mine", [])  # type: ignore[arg-type]


class Counting(httpx.AsyncBaseTransport):
    """Another transport, with the path of every request it carried."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


async def deliver(event_id: str) -> None:
    """What the relay and the ledger's consumer do with the api's outbox row."""
    async with db.transaction() as session:
        row = (
            await session.execute(select(OutboxEvent).where(col(OutboxEvent.event_id) == event_id))
        ).scalar_one()
        await ingest_receivable_event.handler(
            session, Envelope(row.event_id, row.topic, row.payload)
        )
