"""FinancingRegistry operations on a real anvil: the API's requests arrive through the outbox
consumer, the ledger sends them one at a time on the anchoring account's nonces, and answers each
with a ``financing.registry_result`` event — done, or refused with the contract's error by name.

The module has its own anvil (it switches auto-mining off) and each test a fresh FinancingRegistry
whose registrar is the anchoring account, pinned in the settings passed to the service.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from eth_account import Account
from sqlalchemy import text
from web3 import Web3
from web3.types import Nonce, TxParams

from qilian.kit import db, outbox
from qilian.kit.anvil import DEV_PRIVATE_KEY
from qilian.kit.outbox import Envelope
from qilian.kit.settings import get_settings
from qilian.kit.tasks import apply_batch
from services.ledger.anchoring import service as anchoring
from services.ledger.anchoring.settings import AnchoringSettings
from services.ledger.chain.artifacts import deploy_contract
from services.ledger.registry import service, tasks
from services.ledger.registry.chain import Call, RegistryChain
from services.ledger.registry.fingerprints import on_chain_values
from tests.integration.ledger.conftest import ANCHORER, base_settings, feed_receivables, rows

RESULT = "financing.registry_result"


# helpers (imported by the other test_registry_* modules) ----------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def invoice() -> str:
    """A platform invoice fingerprint: sha256 hex of a normalised invoice identity."""
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def request(
    action: str,
    financing_id: str,
    invoice_fingerprint: str,
    *,
    receivable_id: str | None = None,
    part: bool = False,
    reason: int | None = None,
    operation_id: str | None = None,
) -> dict[str, Any]:
    return {
        "operation_id": operation_id or new_id("rop"),
        "action": action,
        "financing_id": financing_id,
        "receivable_id": receivable_id or new_id("rcv"),
        "invoice_fingerprint": invoice_fingerprint,
        "part": part,
        "reason": reason,
    }


async def deliver(payload: dict[str, Any]) -> str:
    """Emit a ``financing.registry`` event as the API does and deliver it through the consumer
    (effect and acknowledgement in one transaction), as the worker does."""
    async with db.transaction() as session:
        event_id = await outbox.emit(session, service.REQUEST_TOPIC, payload)
    await apply_batch(
        [Envelope(event_id, service.REQUEST_TOPIC, payload)], tasks.accept_operation.handler
    )
    return event_id


async def settle(settings: AnchoringSettings, limit: int = 20) -> tasks.TickReport:
    """Tick (as beat does) until no operation is pending or sent."""
    report = tasks.TickReport()
    for _ in range(limit):
        one = await tasks.tick(settings)
        report.sent += one.sent
        report.done += one.done
        report.refused += one.refused
        report.error = one.error
        if not await rows(
            "SELECT 1 FROM ledger.registry_operations WHERE state IN ('pending', 'sent')"
        ):
            return report
    raise AssertionError(f"registry operations still open: {report}")


async def operation(operation_id: str) -> Any:
    (row,) = await rows(
        "SELECT * FROM ledger.registry_operations WHERE operation_id = :id", id=operation_id
    )
    return row


async def results(operation_id: str) -> list[dict[str, Any]]:
    found = await rows(
        "SELECT payload FROM platform.outbox WHERE topic = :topic"
        " AND payload ->> 'operation_id' = :id ORDER BY id",
        topic=RESULT,
        id=operation_id,
    )
    return [row.payload for row in found]


def values(payload: dict[str, Any]) -> Any:
    return on_chain_values(
        get_settings().registry_key.get_secret_value(),
        invoice_fingerprint=payload["invoice_fingerprint"],
        financing_id=payload["financing_id"],
        receivable_id=payload["receivable_id"],
        part=payload["part"],
    )


def registry_call(v: Any) -> Call:
    return Call("register", v.fingerprint, v.invoice_fingerprint, v.financing_ref)


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def sender_nonce(w3: Web3) -> int:
    return w3.eth.get_transaction_count(ANCHORER)


async def clean_registry() -> None:
    async with db.transaction() as session:
        await session.execute(text("TRUNCATE ledger.registry_operations"))
        await session.execute(
            text("DELETE FROM platform.outbox WHERE topic IN (:a, :b)"),
            {"a": service.REQUEST_TOPIC, "b": RESULT},
        )


# fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def clean(db_engine: None) -> AsyncIterator[None]:
    await clean_registry()
    yield
    await clean_registry()  # no sent operation may hold back the anchoring tests' account


@pytest.fixture
def registry_settings(own_anvil: Any, w3: Web3) -> AnchoringSettings:
    """Settings pointing at a fresh FinancingRegistry (registrar: the anchoring account)."""
    address, _ = deploy_contract(w3, "FinancingRegistry", DEV_PRIVATE_KEY, ANCHORER)
    return base_settings(
        rpc_url=own_anvil.rpc_url, registry_address=address, receipt_wait_seconds=2.0
    )


@pytest.fixture
def registry(registry_settings: AnchoringSettings) -> RegistryChain:
    assert registry_settings.registry_address is not None
    return RegistryChain(
        registry_settings.rpc_url, registry_settings.registry_address, DEV_PRIVATE_KEY
    )


# tests ------------------------------------------------------------------------------------------


async def test_register_is_mined_and_answered_with_a_result_event(
    registry_settings: AnchoringSettings, registry: RegistryChain, w3: Web3
):
    payload = request("register", new_id("fin"), invoice())
    await deliver(payload)
    start = sender_nonce(w3)

    report = await settle(registry_settings)

    assert report.sent == [payload["operation_id"]]
    assert report.done == [payload["operation_id"]]
    row = await operation(payload["operation_id"])
    expected = values(payload)
    assert row.state == "done"
    assert row.fingerprint == expected.fingerprint
    assert row.financing_ref == Web3.keccak(text=payload["financing_id"]).to_0x_hex()
    assert row.attempts == 1
    assert row.nonce == start
    assert sender_nonce(w3) == start + 1
    receipt = w3.eth.get_transaction_receipt(row.tx_hash)
    assert receipt["status"] == 1
    assert receipt["blockNumber"] == row.block_number
    assert receipt["to"] == registry.address
    on_chain = registry.status(expected.fingerprint)
    assert on_chain.active
    assert on_chain.financing_ref == row.financing_ref
    assert await results(payload["operation_id"]) == [
        {
            "operation_id": payload["operation_id"],
            "action": "register",
            "financing_id": payload["financing_id"],
            "receivable_id": payload["receivable_id"],
            "outcome": "done",
            "error": None,
            "fingerprint": expected.fingerprint,
            "financing_ref": row.financing_ref,
            "tx_hash": row.tx_hash,
            "block_number": row.block_number,
        }
    ]


async def test_the_same_operation_delivered_twice_is_one_row_and_one_transaction(
    registry_settings: AnchoringSettings, w3: Web3
):
    payload = request("register", new_id("fin"), invoice())
    await deliver(payload)
    await deliver(payload)  # a second event with the same operation id (the API retried)
    start = sender_nonce(w3)

    await settle(registry_settings)
    await deliver(payload)  # and once more after it was done
    await settle(registry_settings)

    found = await rows(
        "SELECT state FROM ledger.registry_operations WHERE operation_id = :id",
        id=payload["operation_id"],
    )
    assert [r.state for r in found] == ["done"]
    assert sender_nonce(w3) == start + 1
    assert len(await results(payload["operation_id"])) == 1


async def test_a_second_financing_of_the_same_invoice_is_refused_already_financed_without_gas(
    registry_settings: AnchoringSettings, registry: RegistryChain, w3: Web3
):
    fingerprint = invoice()
    first = request("register", new_id("fin"), fingerprint)
    second = request("register", new_id("fin"), fingerprint)
    await deliver(first)
    await deliver(second)
    start = sender_nonce(w3)

    report = await settle(registry_settings)

    assert report.done == [first["operation_id"]]
    assert report.refused == [second["operation_id"]]
    assert sender_nonce(w3) == start + 1  # the refusal was a simulation: no transaction
    refused = await operation(second["operation_id"])
    assert refused.state == "refused"
    assert refused.error == "AlreadyFinanced"
    assert refused.tx_hash is None
    (result,) = await results(second["operation_id"])
    assert result["outcome"] == "refused"
    assert result["error"] == "AlreadyFinanced"
    assert result["tx_hash"] is None
    assert result["block_number"] is None
    assert registry.status(values(first).fingerprint).financing_ref == values(first).financing_ref


async def test_parts_of_an_invoice_block_the_whole_and_the_whole_blocks_parts(
    registry_settings: AnchoringSettings, registry: RegistryChain
):
    split = invoice()
    part_a = request("register", new_id("fin"), split, part=True)
    part_b = request("register", new_id("fin"), split, part=True)
    whole_after_parts = request("register", new_id("fin"), split)
    whole = invoice()
    whole_first = request("register", new_id("fin"), whole)
    part_after_whole = request("register", new_id("fin"), whole, part=True)
    for payload in (part_a, part_b, whole_after_parts, whole_first, part_after_whole):
        await deliver(payload)

    await settle(registry_settings)

    states = {
        p["operation_id"]: ((r := await operation(p["operation_id"])).state, r.error)
        for p in (part_a, part_b, whole_after_parts, whole_first, part_after_whole)
    }
    assert states == {
        part_a["operation_id"]: ("done", None),
        part_b["operation_id"]: ("done", None),
        whole_after_parts["operation_id"]: ("refused", "InvoicePartsFinanced"),
        whole_first["operation_id"]: ("done", None),
        part_after_whole["operation_id"]: ("refused", "InvoiceWholeFinanced"),
    }
    a = await operation(part_a["operation_id"])
    assert a.invoice_fingerprint == values(whole_after_parts).fingerprint
    assert (
        registry.contract.functions.activePartCount(bytes.fromhex(a.invoice_fingerprint[2:])).call()
        == 2
    )
    assert registry.status(a.fingerprint).active


async def test_release_then_register_again(
    registry_settings: AnchoringSettings, registry: RegistryChain
):
    fingerprint = invoice()
    first = request("register", new_id("fin"), fingerprint)
    await deliver(first)
    await settle(registry_settings)
    release = request(
        "release",
        first["financing_id"],
        fingerprint,
        receivable_id=first["receivable_id"],
        reason=1,
    )
    again = request("register", new_id("fin"), fingerprint)
    await deliver(release)
    await deliver(again)

    report = await settle(registry_settings)

    assert report.done == [release["operation_id"], again["operation_id"]]
    (result,) = await results(release["operation_id"])
    assert result["outcome"] == "done"
    assert result["action"] == "release"
    assert result["tx_hash"] is not None
    released = await operation(release["operation_id"])
    assert released.reason == 1
    logs = registry.contract.events.Released().get_logs(from_block=released.block_number)
    assert [log["args"]["reason"] for log in logs] == [1]
    on_chain = registry.status(values(again).fingerprint)
    assert on_chain.active
    assert on_chain.financing_ref == values(again).financing_ref


async def test_a_part_released_frees_its_invoice_for_a_whole_financing(
    registry_settings: AnchoringSettings, registry: RegistryChain
):
    split = invoice()
    part = request("register", new_id("fin"), split, part=True)
    await deliver(part)
    await settle(registry_settings)
    await deliver(
        request(
            "release",
            part["financing_id"],
            split,
            receivable_id=part["receivable_id"],
            part=True,
            reason=2,
        )
    )
    whole = request("register", new_id("fin"), split)
    await deliver(whole)

    report = await settle(registry_settings)

    assert report.refused == []
    assert registry.status(values(whole).fingerprint).active
    assert not registry.status(values(part).fingerprint).active


async def test_releasing_what_is_not_financed_is_done_and_another_financing_ref_is_refused(
    registry_settings: AnchoringSettings, w3: Web3
):
    fingerprint = invoice()
    never = request("release", new_id("fin"), fingerprint, reason=4)
    await deliver(never)
    holder = request("register", new_id("fin"), fingerprint)
    await deliver(holder)
    stranger = request("release", new_id("fin"), fingerprint, reason=3)
    await deliver(stranger)
    start = sender_nonce(w3)

    await settle(registry_settings)

    assert (await operation(never["operation_id"])).state == "done"  # nothing to release
    assert (await results(never["operation_id"]))[0]["tx_hash"] is None
    refused = await operation(stranger["operation_id"])
    assert (refused.state, refused.error) == ("refused", "FinancingRefMismatch")
    assert sender_nonce(w3) == start + 1  # only the register was a transaction


class Crash(Exception):
    """The process died after broadcasting, before its transaction committed."""


async def step_then_crash(settings: AnchoringSettings, operation_id: str) -> None:
    async with db.transaction() as session:
        outcome = await service.step(session, settings)
        assert outcome.sent == operation_id
        raise Crash  # before the transaction recording "sent" commits


async def crash_after_send(settings: AnchoringSettings, operation_id: str) -> None:
    with pytest.raises(Crash):
        await step_then_crash(settings, operation_id)


@pytest.mark.parametrize("action", ["register", "release"])
async def test_a_crash_between_send_and_receipt_has_no_second_effect(
    registry_settings: AnchoringSettings, registry: RegistryChain, w3: Web3, action: str
):
    fingerprint = invoice()
    register = request("register", new_id("fin"), fingerprint, part=True)
    await deliver(register)
    if action == "release":
        await settle(registry_settings)
        op = request(
            "release",
            register["financing_id"],
            fingerprint,
            receivable_id=register["receivable_id"],
            part=True,
            reason=1,
        )
        await deliver(op)
    else:
        op = register
    start = sender_nonce(w3)

    await crash_after_send(registry_settings, op["operation_id"])
    assert (await operation(op["operation_id"])).state == "pending"  # the ledger forgot it
    assert sender_nonce(w3) == start + 1  # but the chain mined it
    (landed_tx,) = w3.eth.get_block("latest")["transactions"]  # the only one in its block
    assert isinstance(landed_tx, bytes)

    report = await settle(registry_settings)

    assert report.sent == []
    assert report.done == [op["operation_id"]]
    assert sender_nonce(w3) == start + 1  # never sent a second time
    row = await operation(op["operation_id"])
    assert row.state == "done"
    assert row.tx_hash == "0x" + landed_tx.hex()  # found by the contract's event
    assert (await results(op["operation_id"]))[0]["tx_hash"] == row.tx_hash
    part_count = registry.contract.functions.activePartCount(
        bytes.fromhex(values(register).invoice_fingerprint[2:])
    ).call()
    assert part_count == (1 if action == "register" else 0)


async def test_a_dropped_transaction_is_sent_again(
    registry_settings: AnchoringSettings, registry: RegistryChain, w3: Web3
):
    payload = request("register", new_id("fin"), invoice())
    await deliver(payload)
    start = sender_nonce(w3)
    rpc(w3, "evm_setAutomine", False)
    try:
        async with db.transaction() as session:
            assert (await service.step(session, registry_settings)).sent == payload["operation_id"]
        first = await operation(payload["operation_id"])
        assert first.state == "sent"
        rpc(w3, "anvil_dropTransaction", first.tx_hash)  # the node forgot it
    finally:
        rpc(w3, "evm_setAutomine", True)

    await settle(registry_settings)

    row = await operation(payload["operation_id"])
    assert row.state == "done"
    assert row.attempts == 2  # broadcast again (same nonce and input: the same signed bytes)
    assert row.nonce == start  # the dropped nonce is used again: no gap
    assert sender_nonce(w3) == start + 1
    assert registry.status(values(payload).fingerprint).active


FINANCINGS_SLOT = 4  # FinancingRegistry storage: _owner, _pendingOwner, registrar, activePartCount


def financing_slot(fingerprint: str) -> str:
    """The storage slot of ``_financings[fingerprint].financingRef``."""
    key = bytes.fromhex(fingerprint[2:]) + FINANCINGS_SLOT.to_bytes(32, "big")
    return Web3.keccak(key).to_0x_hex()


@pytest.mark.parametrize(("whose", "outcome"), [("theirs", "refused"), ("ours", "done")])
async def test_a_transaction_that_reverts_on_chain_is_decided_from_the_contract(
    registry_settings: AnchoringSettings,
    registry: RegistryChain,
    w3: Web3,
    whose: str,
    outcome: str,
):
    """Simulated free, then the invoice was taken before our transaction was mined (by another
    platform sharing the key; or by our own earlier transaction): it reverts on chain and is
    decided from the contract's answer — refused, or done when the holder is our own ref."""
    payload = request("register", new_id("fin"), invoice())
    await deliver(payload)
    v = values(payload)
    holder = v.financing_ref if whose == "ours" else Web3.keccak(text="fin_other").to_0x_hex()
    rpc(w3, "evm_setAutomine", False)
    try:
        async with db.transaction() as session:
            assert (await service.step(session, registry_settings)).sent == payload["operation_id"]
        assert registry.simulate(registry_call(v)) > 0  # still free when it was sent
        rpc(w3, "anvil_setStorageAt", registry.address, financing_slot(v.fingerprint), holder)
        assert registry.status(v.fingerprint).financing_ref == holder
        rpc(w3, "evm_mine")
    finally:
        rpc(w3, "evm_setAutomine", True)
    sent = await operation(payload["operation_id"])
    assert w3.eth.get_transaction_receipt(sent.tx_hash)["status"] == 0

    await settle(registry_settings)

    row = await operation(payload["operation_id"])
    assert row.state == outcome
    if outcome == "refused":
        assert row.error == "AlreadyFinanced"
        assert row.tx_hash == sent.tx_hash  # the reverted transaction
        assert row.block_number == w3.eth.get_transaction_receipt(sent.tx_hash)["blockNumber"]
    (result,) = await results(payload["operation_id"])
    assert result["outcome"] == outcome
    assert row.attempts == 1  # never sent again


async def test_registry_and_anchoring_share_one_account_one_transaction_in_flight(
    settings: AnchoringSettings, w3: Web3, own_anvil: Any
):
    """Anchoring batches and registry operations interleave on one nonce sequence: never two
    transactions of the account in the pool, nonces contiguous, each sent once."""
    address, _ = deploy_contract(w3, "FinancingRegistry", DEV_PRIVATE_KEY, ANCHORER)
    both = settings.model_copy(update={"registry_address": address, "batch_max_leaves": 1})
    await feed_receivables(4, 1)
    async with db.transaction() as session:
        await anchoring.build_records(session, both)
    async with db.transaction() as session:
        assert len(await anchoring.close_batches(session, both)) == 4
    payloads = [request("register", new_id("fin"), invoice()) for _ in range(4)]
    for payload in payloads:
        await deliver(payload)
    start = sender_nonce(w3)

    async def anchor_step() -> bool:
        async with db.transaction() as session:
            return (await anchoring.anchor_step(session, both)).sent is not None

    async def registry_step() -> bool:
        async with db.transaction() as session:
            return (await service.step(session, both)).sent is not None

    rpc(w3, "evm_setAutomine", False)
    try:
        for _ in range(8):
            sent = await asyncio.gather(
                *(anchor_step() for _ in range(6)), *(registry_step() for _ in range(6))
            )
            assert sum(sent) == 1
            assert int(rpc(w3, "txpool_status")["pending"], 16) == 1
            rpc(w3, "evm_mine")
    finally:
        rpc(w3, "evm_setAutomine", True)
    await anchor_step()
    await settle(both)

    batches = await rows("SELECT status, nonce FROM ledger.batches ORDER BY id")
    operations = await rows("SELECT state, nonce FROM ledger.registry_operations")
    assert {b.status for b in batches} <= {"anchored", "final"}
    assert {o.state for o in operations} == {"done"}
    nonces = sorted([b.nonce for b in batches] + [o.nonce for o in operations])
    assert nonces == list(range(start, start + 8))
    assert sender_nonce(w3) == start + 8


async def test_an_invalid_request_is_kept_in_the_outbox_with_its_error(db_engine: None):
    payload = request("register", new_id("fin"), "not-a-fingerprint")
    event_id = await deliver(payload)

    (row,) = await rows(
        "SELECT delivered_at, last_error FROM platform.outbox WHERE event_id = :id", id=event_id
    )
    assert row.delivered_at is None
    assert "invoice_fingerprint" in row.last_error
    assert not await rows("SELECT 1 FROM ledger.registry_operations")


async def test_metrics_count_operations_by_state(registry_settings: AnchoringSettings):
    from prometheus_client import REGISTRY

    fingerprint = invoice()
    await deliver(request("register", new_id("fin"), fingerprint))
    await deliver(request("register", new_id("fin"), fingerprint))
    await tasks.tick(registry_settings.model_copy(update={"receipt_wait_seconds": 0.0}))
    async with db.transaction() as session:
        await service.refresh_metrics(session)
    pending = REGISTRY.get_sample_value("qilian_registry_operations", {"state": "pending"})
    assert pending is not None
    await settle(registry_settings)
    sample = REGISTRY.get_sample_value
    assert sample("qilian_registry_operations", {"state": "done"}) == 1
    assert sample("qilian_registry_operations", {"state": "refused"}) == 1
    assert sample("qilian_registry_operations", {"state": "pending"}) == 0
    assert sample("qilian_registry_oldest_open_seconds") == 0


async def test_an_operation_id_reused_with_other_content_keeps_the_first_request(
    registry_settings: AnchoringSettings,
):
    first = request("register", new_id("fin"), invoice())
    await deliver(first)
    await deliver({**first, "financing_id": new_id("fin")})

    row = await operation(first["operation_id"])
    assert row.financing_id == first["financing_id"]
    assert row.financing_ref == values(first).financing_ref


async def test_a_ledger_account_that_is_not_the_registrar_keeps_operations_pending(
    own_anvil: Any, w3: Web3
):
    """NotRegistrar is about the ledger's key, not the financing: nothing is refused; operations
    wait until the owner names the ledger's account registrar again."""
    stranger = Account.create().address
    address, _ = deploy_contract(w3, "FinancingRegistry", DEV_PRIVATE_KEY, stranger)
    settings = base_settings(rpc_url=own_anvil.rpc_url, registry_address=address)
    payload = request("register", new_id("fin"), invoice())
    await deliver(payload)

    report = await tasks.tick(settings)

    assert report.error is not None
    assert "NotRegistrar" in report.error
    row = await operation(payload["operation_id"])
    assert row.state == "pending"
    assert "NotRegistrar" in row.last_error
    assert await results(payload["operation_id"]) == []

    registry = RegistryChain(own_anvil.rpc_url, address, DEV_PRIVATE_KEY)
    params: TxParams = {"from": ANCHORER, "nonce": Nonce(sender_nonce(w3))}
    tx = registry.contract.functions.setRegistrar(ANCHORER).build_transaction(params)
    signed = Account.from_key(DEV_PRIVATE_KEY).sign_transaction(cast(dict[str, Any], tx))
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    await settle(settings)

    assert (await operation(payload["operation_id"])).state == "done"


async def test_twenty_concurrent_deliveries_of_one_operation_make_one_row_and_one_transaction(
    registry_settings: AnchoringSettings, w3: Web3
):
    payload = request("register", new_id("fin"), invoice())
    await asyncio.gather(*(deliver(payload) for _ in range(20)))
    start = sender_nonce(w3)

    await asyncio.gather(*(tasks.tick(registry_settings) for _ in range(5)))
    await settle(registry_settings)

    found = await rows(
        "SELECT state FROM ledger.registry_operations WHERE operation_id = :id",
        id=payload["operation_id"],
    )
    assert [r.state for r in found] == ["done"]
    assert sender_nonce(w3) == start + 1
    assert len(await results(payload["operation_id"])) == 1
