"""What must hold after every fault, checked over the database and the chain together.

- **No event lost**: every ``receivable.event`` committed to the outbox was delivered, reached the
  ledger's inbox, was accepted (not rejected) and is a record in an ``anchored`` or ``final``
  batch.
- **None twice**: batch ids are 1…n with no gap; every record is a leaf of exactly one batch's
  stored tree, the trees hold nothing else, and each stored tree rebuilds to its batch's root.
- **The chain agrees**: ``lastBatchId`` on the current ``ReceivableAnchor`` is the highest batch
  id; ``batches(id)`` holds each batch's root and leaf count; each anchoring receipt is on the
  canonical chain where the database says; exactly one ``RootAnchored`` log per batch id, with the
  database's root.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes

from qilian.kit.anvil import DEV_PRIVATE_KEY
from services.ledger.anchoring.chain import AnchorChain
from services.ledger.records import merkle
from services.ledger.records.keccak import from_hex, to_hex
from tests.chaos.conftest import ChaosStack

ANCHORED = ("anchored", "final")


@dataclass(frozen=True)
class Batch:
    id: int
    root: str
    leaf_count: int
    dump: dict[str, Any]
    status: str
    contract: str | None
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    attempts: int


@dataclass(frozen=True)
class Summary:
    """What the checks saw, for the tests' own extra assertions."""

    events: int
    batches: list[Batch]
    contract: str
    logs_per_batch: dict[int, int]

    @property
    def resent(self) -> list[int]:
        return [b.id for b in self.batches if b.attempts > 1]


def batches(stack: ChaosStack) -> list[Batch]:
    rows = stack.rows(
        "SELECT id, root, leaf_count, dump, status, contract, tx_hash, block_number, block_hash,"
        " attempts FROM ledger.batches ORDER BY id"
    )
    return [Batch(*row) for row in rows]


def anchor_chain(stack: ChaosStack) -> AnchorChain:
    key = stack.env.get("QILIAN_ANCHORER_PRIVATE_KEY", DEV_PRIVATE_KEY)
    return AnchorChain(stack.anvil.rpc_url, stack.anchor_address(), key)


AUDIT_STREAM = "audit-log"


def assert_no_event_lost(stack: ChaosStack) -> int:
    """Outbox → inbox → record → anchored batch, for every event emitted by the test."""
    rows = stack.rows(
        "SELECT event_id, payload->>'receivable_id' FROM platform.outbox"
        " WHERE topic = 'receivable.event'"
    )
    outbox_ids = {r[0] for r in rows}
    # beat also checkpoints the audit log's head into the stream "audit-log" every minute: those
    # events are not the test's, but they must reach the chain like any other
    ours = [r for r in rows if r[1] != AUDIT_STREAM]
    assert len(ours) == stack.emitted, "the outbox holds what the test emitted"
    undelivered = stack.scalar(
        "SELECT count(*) FROM platform.outbox WHERE delivered_at IS NULL OR dead_at IS NOT NULL"
    )
    assert undelivered == 0, f"{undelivered} outbox rows undelivered or dead"
    inbox = stack.rows("SELECT event_id, processed_at IS NOT NULL, error FROM ledger.event_inbox")
    assert {r[0] for r in inbox} == outbox_ids, "every event reached the inbox, nothing else"
    assert all(r[1] for r in inbox), "every inbox event processed"
    rejected = [(r[0], r[2]) for r in inbox if r[2] is not None]
    assert rejected == [], f"valid events rejected: {rejected[:5]}"
    records = stack.rows(
        "SELECT r.event_id, b.status FROM ledger.records r"
        " LEFT JOIN ledger.batches b ON b.id = r.batch_id"
    )
    assert {r[0] for r in records} == outbox_ids, "one record per event"
    not_anchored = [r for r in records if r[1] not in ANCHORED]
    assert not_anchored == [], f"records not anchored: {not_anchored[:5]}"
    return len(ours)


def assert_each_entry_in_exactly_one_batch(stack: ChaosStack, stored: list[Batch]) -> None:
    """Ids 1…n; the trees hold every record once and nothing else; each rebuilds to its root."""
    assert [b.id for b in stored] == list(range(1, len(stored) + 1)), "batch ids have a gap"
    leaves: Counter[tuple[str, str]] = Counter()
    for batch in stored:
        tree = merkle.load(batch.dump)
        assert to_hex(tree.root) == batch.root, f"batch {batch.id}: tree does not rebuild its root"
        assert len(tree) == batch.leaf_count, f"batch {batch.id}: leaf count"
        members = {(to_hex(e), to_hex(h)) for e, h in tree.values}
        in_db = {
            (r[0], r[1])
            for r in stack.rows(
                "SELECT entry_id, record_hash FROM ledger.records WHERE batch_id = %(id)s",
                {"id": batch.id},
            )
        }
        assert members == in_db, f"batch {batch.id}: tree leaves differ from its records"
        leaves.update((to_hex(e), to_hex(h)) for e, h in tree.values)
    twice = [leaf for leaf, n in leaves.items() if n > 1]
    assert twice == [], f"entries in more than one batch: {twice[:5]}"
    records = stack.rows("SELECT entry_id, record_hash FROM ledger.records")
    assert set(leaves) == {(r[0], r[1]) for r in records}
    assert sum(leaves.values()) == len(records)


def assert_chain_agrees(stack: ChaosStack, stored: list[Batch]) -> dict[int, int]:
    """lastBatchId, batches(id), receipts and RootAnchored logs against the database."""
    chain = anchor_chain(stack)
    assert chain.has_code(), f"no ReceivableAnchor code at {chain.address}"
    highest = max((b.id for b in stored if b.status in ANCHORED), default=0)
    assert chain.last_batch_id() == highest == len(stored), (
        f"lastBatchId {chain.last_batch_id()} vs highest anchored {highest} of {len(stored)}"
    )
    for batch in stored:
        on_chain = chain.batch(batch.id)
        assert on_chain.root == from_hex(batch.root, length=32), f"batch {batch.id}: root"
        assert on_chain.count == batch.leaf_count, f"batch {batch.id}: count"
        assert batch.contract == chain.address.lower(), f"batch {batch.id} on another contract"
        assert batch.tx_hash is not None, f"batch {batch.id}: no transaction"
        assert batch.block_number is not None, f"batch {batch.id}: no block"
        receipt = chain.receipt(batch.tx_hash)
        assert receipt is not None, f"batch {batch.id}: no receipt"
        assert receipt.status == 1, f"batch {batch.id}: reverted"
        assert receipt.block_number == batch.block_number == on_chain.block_number
        assert receipt.block_hash == batch.block_hash == chain.block_hash(batch.block_number), (
            f"batch {batch.id}: block not canonical"
        )
    logs = chain.contract.events.RootAnchored().get_logs(from_block=0, to_block="latest")
    per_batch: Counter[int] = Counter(int(log["args"]["batchId"]) for log in logs)
    assert dict(per_batch) == {b.id: 1 for b in stored}, (
        f"RootAnchored logs per batch id: {dict(per_batch)}"
    )
    roots = {int(log["args"]["batchId"]): HexBytes(log["args"]["root"]).to_0x_hex() for log in logs}
    assert roots == {b.id: b.root for b in stored}, "RootAnchored roots differ from the database"
    return dict(per_batch)


def assert_consistent(stack: ChaosStack) -> Summary:
    """Every invariant of the module docstring; the summary of what was checked."""
    events = assert_no_event_lost(stack)
    stored = batches(stack)
    assert stored, "nothing was batched"
    assert_each_entry_in_exactly_one_batch(stack, stored)
    logs = assert_chain_agrees(stack, stored)
    return Summary(events, stored, stack.anchor_address(), logs)
