"""The chain goes away and comes back: registry operations stay pending (or sent), each tick logs
and tries again, and once anvil is back — restarted from its state file on the same port — they
complete, each with one effect on chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from qilian.kit import db
from qilian.kit.anvil import DEV_PRIVATE_KEY, Anvil
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.chain.artifacts import deploy_contract
from services.ledger.registry import service, tasks
from services.ledger.registry.chain import RegistryChain
from tests.integration.ledger.conftest import ANCHORER, base_settings
from tests.integration.ledger.test_registry_operations import (
    clean,
    deliver,
    invoice,
    new_id,
    operation,
    request,
    results,
    rpc,
    settle,
    values,
)

__all__ = ["clean"]  # the autouse fixture emptying the registry's table and events


class Outage:
    """An anvil with a state file, stopped and restarted on the same port by the test."""

    def __init__(self, state: Path) -> None:
        self.chain = Anvil(state_file=state, state_interval=1).start()

    @property
    def rpc_url(self) -> str:
        return self.chain.rpc_url

    def stop(self) -> None:
        self.chain.stop()  # SIGTERM: anvil writes its state

    def restart(self) -> None:
        self.chain = Anvil(
            port=self.chain.port, state_file=self.chain.state_file, state_interval=1
        ).start()


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    chain = Outage(tmp_path / "chain.json")
    yield chain
    chain.stop()


@pytest.fixture
def chain_settings(outage: Outage) -> AnchoringSettings:
    w3 = Web3(Web3.HTTPProvider(outage.rpc_url))
    address, _ = deploy_contract(w3, "FinancingRegistry", DEV_PRIVATE_KEY, ANCHORER)
    return base_settings(rpc_url=outage.rpc_url, registry_address=address, receipt_wait_seconds=1.0)


def registrations(settings: AnchoringSettings, fingerprint: str) -> int:
    assert settings.registry_address is not None
    registry = RegistryChain(settings.rpc_url, settings.registry_address, DEV_PRIVATE_KEY)
    events = registry.contract.events.Registered().get_logs(
        from_block=0, argument_filters={"fingerprint": bytes.fromhex(fingerprint[2:])}
    )
    return len(events)


async def test_operations_wait_while_the_chain_is_down_and_complete_when_it_returns(
    outage: Outage, chain_settings: AnchoringSettings
):
    payload = request("register", new_id("fin"), invoice())
    await deliver(payload)
    outage.stop()

    for _ in range(3):  # beat keeps ticking; each pass fails quietly
        report = await tasks.tick(chain_settings)
        assert report.error is not None
        assert report.error.startswith("chain unavailable")
        assert (await operation(payload["operation_id"])).state == "pending"
    assert await results(payload["operation_id"]) == []

    outage.restart()
    await settle(chain_settings)

    row = await operation(payload["operation_id"])
    assert row.state == "done"
    assert [r["outcome"] for r in await results(payload["operation_id"])] == ["done"]
    assert registrations(chain_settings, values(payload).fingerprint) == 1


async def test_a_transaction_in_flight_when_the_chain_stops_lands_once_after_it_returns(
    outage: Outage, chain_settings: AnchoringSettings
):
    payload = request("register", new_id("fin"), invoice())
    await deliver(payload)
    w3 = Web3(Web3.HTTPProvider(outage.rpc_url))
    start = w3.eth.get_transaction_count(ANCHORER)
    rpc(w3, "evm_setAutomine", False)
    async with db.transaction() as session:
        assert (await service.step(session, chain_settings)).sent == payload["operation_id"]
    outage.stop()  # the transaction was in the node's pool, not mined

    report = await tasks.tick(chain_settings)
    assert report.error is not None
    assert (await operation(payload["operation_id"])).state == "sent"

    outage.restart()  # auto-mining again; the pool may or may not have survived
    await settle(chain_settings)

    row = await operation(payload["operation_id"])
    assert row.state == "done"
    assert registrations(chain_settings, values(payload).fingerprint) == 1
    w3 = Web3(Web3.HTTPProvider(outage.rpc_url))
    assert w3.eth.get_transaction_count(ANCHORER) == start + 1
    assert row.nonce == start
    assert w3.eth.get_transaction_receipt(row.tx_hash)["status"] == 1
