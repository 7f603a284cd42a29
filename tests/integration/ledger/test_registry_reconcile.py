"""The chain loses what the ledger saw confirmed (an anvil snapshot reverted: a node restarted
from an older state, a reorganisation deeper than the confirmations): the registry's
reconciliation finds each registration no longer active and each release undone, sends them
again, and leaves a fingerprint another financing holds alone (a conflict, logged)."""

from __future__ import annotations

import asyncio
from typing import Any

from web3 import Web3

from qilian.kit import db
from services.ledger.anchoring import repository as accounts
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.registry import repository, service, tasks
from services.ledger.registry.chain import RegistryChain
from tests.integration.ledger.test_registry_operations import (
    clean,
    deliver,
    invoice,
    new_id,
    operation,
    registry,
    registry_call,
    registry_settings,
    request,
    results,
    rpc,
    settle,
    values,
)

__all__ = ["clean", "registry", "registry_settings"]  # fixtures of the registry tests


async def reconcile(settings: AnchoringSettings) -> service.ReconcileReport:
    return await tasks.reconcile(settings)


async def test_a_registration_the_chain_lost_is_registered_again(
    registry_settings: AnchoringSettings, registry: RegistryChain, w3: Web3
):
    kept = request("register", new_id("fin"), invoice())
    await deliver(kept)
    await settle(registry_settings)
    snapshot = rpc(w3, "evm_snapshot")
    lost = request("register", new_id("fin"), invoice())
    await deliver(lost)
    await settle(registry_settings)
    assert registry.status(values(lost).fingerprint).active
    assert (await reconcile(registry_settings)).resent == []  # nothing lost yet: no effect

    assert rpc(w3, "evm_revert", snapshot) is True  # the chain forgets the second registration
    assert not registry.status(values(lost).fingerprint).active
    report = await reconcile(registry_settings)

    assert report.checked == 2
    assert report.resent == [lost["operation_id"]]
    assert (await operation(lost["operation_id"])).state == "pending"
    await settle(registry_settings)
    row = await operation(lost["operation_id"])
    assert row.state == "done"
    assert row.attempts == 2
    on_chain = registry.status(values(lost).fingerprint)
    assert on_chain.active
    assert on_chain.financing_ref == row.financing_ref
    assert registry.status(values(kept).fingerprint).active
    # the API hears the outcome again (a no-op there); nothing else was sent
    assert [r["outcome"] for r in await results(lost["operation_id"])] == ["done", "done"]
    assert (await reconcile(registry_settings)).resent == []


async def test_a_release_the_chain_undid_is_released_again(
    registry_settings: AnchoringSettings, registry: RegistryChain, w3: Web3
):
    fingerprint = invoice()
    first = request("register", new_id("fin"), fingerprint)
    await deliver(first)
    await settle(registry_settings)
    snapshot = rpc(w3, "evm_snapshot")
    release = request(
        "release", first["financing_id"], fingerprint, receivable_id=first["receivable_id"],
        reason=1,
    )  # fmt: skip
    await deliver(release)
    await settle(registry_settings)
    assert not registry.status(values(first).fingerprint).active

    assert rpc(w3, "evm_revert", snapshot) is True
    report = await reconcile(registry_settings)

    assert report.resent == [release["operation_id"]]
    await settle(registry_settings)
    assert not registry.status(values(first).fingerprint).active
    assert (await operation(release["operation_id"])).state == "done"


async def test_a_fingerprint_another_financing_took_is_a_conflict_left_alone(
    registry_settings: AnchoringSettings, registry: RegistryChain, w3: Web3
):
    fingerprint = invoice()
    snapshot = rpc(w3, "evm_snapshot")
    ours = request("register", new_id("fin"), fingerprint)
    await deliver(ours)
    await settle(registry_settings)
    assert rpc(w3, "evm_revert", snapshot) is True
    # meanwhile another platform sharing the registry financed the same invoice
    theirs: dict[str, Any] = request("register", new_id("fin"), fingerprint)
    nonce = w3.eth.get_transaction_count(registry.sender)
    tx = registry.sign(registry_call(values(theirs)), nonce, 200_000)
    registry.broadcast(tx)
    rpc(w3, "evm_mine")

    report = await reconcile(registry_settings)

    assert report.resent == []
    assert report.conflicts == [values(ours).fingerprint]
    assert (await operation(ours["operation_id"])).state == "done"
    async with db.transaction() as session:  # the table is unchanged: nothing to send
        assert not await repository.has_open(session)


async def test_the_read_back_leaves_the_account_lock_free_while_the_chain_agrees(
    registry_settings: AnchoringSettings, registry: RegistryChain
):
    """Anchoring holds the account's row lock while it sends; a read-back that finds nothing
    lost must neither wait for it nor take it (it reads the chain once per fingerprint)."""
    done = request("register", new_id("fin"), invoice())
    await deliver(done)
    await settle(registry_settings)
    async with db.transaction() as holder:  # a send in progress holds the account's row
        await accounts.lock_account(holder, registry.sender.lower())
        report = await asyncio.wait_for(reconcile(registry_settings), timeout=15)
    assert report.checked >= 1
    assert report.resent == []
    assert report.conflicts == []
