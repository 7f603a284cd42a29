"""Fixtures of the ledger's integration tests: a clean anchoring state per test, feeding events into
the inbox through the real consumer, and (for the chain tests) a fresh anvil per module with a
fresh ``ReceivableAnchor`` per test, pinned in the settings passed to the service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import text
from web3 import Web3

from qilian.kit import db
from qilian.kit.anvil import DEV_PRIVATE_KEY, Anvil
from qilian.kit.outbox import Envelope
from qilian.kit.settings import get_settings
from services.ledger.anchoring.chain import AnchorChain
from services.ledger.anchoring.settings import AnchoringSettings, anchoring_settings
from services.ledger.chain.artifacts import deploy_contract
from services.ledger.ingest.tasks import ingest_receivable_event

ANCHORER = Web3.to_checksum_address(Account.from_key(DEV_PRIVATE_KEY).address)


@pytest.fixture(autouse=True)
async def clean_ledger(db_engine):
    async with db.transaction() as session:
        await session.execute(
            text("TRUNCATE ledger.records, ledger.batches, ledger.accounts, ledger.event_inbox")
        )


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def event_payload(receivable_id: str, seq: int, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "receivable_id": receivable_id,
        "seq": seq,
        "type": "created" if seq == 1 else "confirmed",
        "at": "2026-11-29T06:00:00.000000Z",
        "actor": "org_core",
        "data": {"amount": "1234.50", "currency": "CNY", "n": seq},
    }
    payload.update(overrides)
    return payload


async def feed(payload: Any, event_id: str | None = None) -> str:
    """Deliver one event to the ledger's inbox through the outbox consumer's handler."""
    event_id = event_id or new_id("evt")
    async with db.transaction() as session:
        await ingest_receivable_event.handler(
            session, Envelope(event_id, "receivable.event", payload)
        )
    return event_id


async def feed_receivables(receivables: int, events_each: int) -> list[str]:
    ids = []
    for _ in range(receivables):
        rid = new_id("rcv")
        for seq in range(1, events_each + 1):
            ids.append(await feed(event_payload(rid, seq)))
    return ids


async def rows(sql: str, **params: Any) -> list[Any]:
    async with db.transaction() as session:
        return list((await session.execute(text(sql), params)).all())


def base_settings(**update: Any) -> AnchoringSettings:
    return anchoring_settings(get_settings()).model_copy(update=update)


@pytest.fixture(scope="module")
def own_anvil() -> Iterator[Anvil]:
    """A chain this module may rewind (snapshots, reorgs) without disturbing other tests."""
    with Anvil() as chain:
        yield chain


@pytest.fixture
def w3(own_anvil: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(own_anvil.rpc_url))


@pytest.fixture
def settings(own_anvil: Anvil, w3: Web3) -> AnchoringSettings:
    """Settings pointing at a fresh ReceivableAnchor on the module's anvil (batch ids from 1)."""
    address, _ = deploy_contract(w3, "ReceivableAnchor", DEV_PRIVATE_KEY, ANCHORER)
    return base_settings(
        rpc_url=own_anvil.rpc_url,
        anchor_address=address,
        batch_max_wait_seconds=0.0,
        confirmations=2,
        receipt_wait_seconds=2.0,
    )


@pytest.fixture
def anchor(settings: AnchoringSettings) -> AnchorChain:
    assert settings.anchor_address is not None
    return AnchorChain(settings.rpc_url, settings.anchor_address, settings.anchorer_private_key)
