"""Proof bundles from the ledger's tables, anchored batches, and verification on the chain.

A bundle is served only for an event whose batch is ``anchored`` or ``final``; before that the
event shows its hashes only (``record_hash``, ``entry_id``) — never the record, its salt or its
``prev``. Every bundle is assembled from the stored record and the batch's stored ``standard-v1``
dump (loaded with every node checked) and verified offline before it leaves the service, so the
ledger never hands out a bundle that does not verify; a stored record that no longer matches its
hash is reported as an error, not served.

Verification (``POST /v1/verify``) is :func:`services.ledger.records.verification.verify_bundles`,
the same engine as ``qilian verify``, reading the chain at the ledger's own RPC endpoint and
checking the bundle's contract against the ledger's ``ReceivableAnchor`` deployment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit.errors import NotFound, QilianError
from qilian.kit.settings import Settings
from services.ledger.anchoring import repository as anchoring
from services.ledger.anchoring.models import AnchorBatch, BatchStatus, LedgerRecord
from services.ledger.deployments import service as deployments
from services.ledger.ingest.models import InboxEvent
from services.ledger.proofs.schemas import (
    AnchorInfo,
    AnchoringStatuses,
    EventAnchorStatus,
    EventProof,
    EventStatus,
    ReceivableProofs,
)
from services.ledger.records import merkle
from services.ledger.records.bundle import ProofBundle, all_ok, verify_bundle_offline
from services.ledger.records.keccak import from_hex, to_hex
from services.ledger.records.verification import (
    RpcChainReader,
    VerificationReport,
    verify_bundles,
)

log = structlog.get_logger(__name__)

ANCHOR_CONTRACT: Final = "ReceivableAnchor"
RETRY_AFTER_SECONDS: Final = 2
RPC_TIMEOUT_SECONDS: Final = 10.0


class NotAnchoredYet(QilianError):
    """The event is known but its batch is not on chain yet: only its hashes are shown."""

    status, slug, title = 409, "not-anchored-yet", "Not anchored yet"


class StoredRecordCorrupt(QilianError):
    """A stored record, hash or tree does not verify: the ledger refuses to serve a proof."""

    status, slug, title = 500, "stored-proof-invalid", "Stored proof does not verify"


def event_status(batch: AnchorBatch | None) -> EventAnchorStatus:
    """``pending`` until the event's batch is mined (``anchored``), then ``final``."""
    if batch is None:
        return "pending"
    return _status(batch.status, batch.contract, batch.tx_hash, batch.block_number)


def _status(
    batch_status: str | None, contract: str | None, tx_hash: str | None, block_number: int | None
) -> EventAnchorStatus:
    if None in (contract, tx_hash, block_number):
        return "pending"
    if batch_status == BatchStatus.FINAL.value:
        return "final"
    if batch_status == BatchStatus.ANCHORED.value:
        return "anchored"
    return "pending"


class _Trees:
    """Batches and their loaded trees, once per request."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.batches: dict[int, AnchorBatch | None] = {}
        self.trees: dict[int, merkle.StandardTree] = {}

    async def batch(self, batch_id: int | None) -> AnchorBatch | None:
        if batch_id is None:
            return None
        if batch_id not in self.batches:
            self.batches[batch_id] = await anchoring.get_batch(self.session, batch_id)
        return self.batches[batch_id]

    def tree(self, batch: AnchorBatch) -> merkle.StandardTree:
        tree = self.trees.get(batch.id)
        if tree is None:
            try:
                tree = merkle.load(batch.dump)
            except merkle.MerkleTreeError as exc:
                log.error("stored_tree_invalid", batch_id=batch.id, error=str(exc))
                raise StoredRecordCorrupt(
                    f"the stored tree of batch {batch.id} is invalid"
                ) from None
            if to_hex(tree.root) != batch.root:
                log.error("stored_tree_root_differs", batch_id=batch.id)
                raise StoredRecordCorrupt(f"the stored tree of batch {batch.id} has another root")
            self.trees[batch.id] = tree
        return tree


def _bundle(
    record: LedgerRecord, batch: AnchorBatch, tree: merkle.StandardTree, chain_id: int
) -> ProofBundle:
    """The bundle of an anchored record, verified offline before it is returned."""
    assert batch.contract is not None
    assert batch.tx_hash is not None
    assert batch.block_number is not None
    try:
        proof = tree.proof_for(from_hex(record.entry_id), from_hex(record.record_hash))
    except merkle.LeafNotFoundError:
        log.error("record_not_in_its_batch", event_id=record.event_id, batch_id=batch.id)
        raise StoredRecordCorrupt(
            f"event {record.event_id} is not a leaf of batch {batch.id}"
        ) from None
    bundle = ProofBundle.model_validate(
        {
            "chain_id": chain_id,
            "contract": batch.contract,
            "batch_id": batch.id,
            "tx_hash": batch.tx_hash,
            "block_number": batch.block_number,
            "root": batch.root,
            "entry_id": record.entry_id,
            "record_hash": record.record_hash,
            "proof": [to_hex(node) for node in proof],
            "record": record.record,
        }
    )
    checks = verify_bundle_offline(bundle)
    if not all_ok(checks):
        failed = [check.name for check in checks if not check.ok]
        log.error("stored_record_does_not_verify", event_id=record.event_id, failed=failed)
        raise StoredRecordCorrupt(f"the stored record of event {record.event_id} does not verify")
    return bundle


async def _event_proof(record: LedgerRecord, trees: _Trees, settings: Settings) -> EventProof:
    batch = await trees.batch(record.batch_id)
    status = event_status(batch)
    bundle = None
    if status != "pending":
        assert batch is not None
        bundle = _bundle(record, batch, trees.tree(batch), settings.chain_id)
    return EventProof(
        seq=record.seq,
        event_id=record.event_id,
        status=status,
        batch_id=record.batch_id,
        entry_id=record.entry_id,
        record_hash=record.record_hash,
        bundle=bundle,
    )


async def event_bundle(
    session: AsyncSession, settings: Settings, event_id: str
) -> tuple[ProofBundle, EventAnchorStatus]:
    """The bundle of one event; :class:`NotAnchoredYet` (409) with its hashes while it is
    pending, :class:`NotFound` (404) when the ledger has no record of it."""
    record = await session.get(LedgerRecord, event_id)
    if record is None:
        inbox = await session.get(InboxEvent, event_id)
        if inbox is not None and inbox.processed_at is None:
            raise NotAnchoredYet(
                f"event {event_id} was received and waits to become a record",
                extra={"event_id": event_id, "anchor_status": "pending", "batch_id": None},
            )
        if inbox is not None:
            raise NotFound(
                f"event {event_id} was refused by the ledger and will never be anchored",
                extra={"event_id": event_id, "anchor_status": "rejected"},
            )
        raise NotFound(f"the ledger has no record of event {event_id}")
    proof = await _event_proof(record, _Trees(session), settings)
    if proof.bundle is None:
        raise NotAnchoredYet(
            f"event {event_id} is not anchored yet; only its hashes are shown",
            extra={
                "event_id": event_id,
                "anchor_status": "pending",
                "batch_id": proof.batch_id,
                "entry_id": proof.entry_id,
                "record_hash": proof.record_hash,
            },
        )
    return proof.bundle, proof.status


async def statuses(session: AsyncSession, event_ids: Sequence[str]) -> AnchoringStatuses:
    """The anchoring status of each event the ledger holds a record of, in one query and without
    building proofs: the same status as the event's proof (``tx_hash`` and block once anchored);
    events it has no record of (unknown, or still in the inbox) are absent."""
    stmt = (
        select(
            col(LedgerRecord.event_id),
            col(LedgerRecord.batch_id),
            col(AnchorBatch.status),
            col(AnchorBatch.contract),
            col(AnchorBatch.tx_hash),
            col(AnchorBatch.block_number),
        )
        .outerjoin(AnchorBatch, col(AnchorBatch.id) == col(LedgerRecord.batch_id))
        .where(col(LedgerRecord.event_id).in_(sorted(set(event_ids))))
    )
    events = {}
    for event_id, batch_id, batch_status, contract, tx_hash, block_number in (
        await session.execute(stmt)
    ).all():
        status = _status(batch_status, contract, tx_hash, block_number)
        anchored = status != "pending"
        events[event_id] = EventStatus(
            status=status,
            batch_id=batch_id,
            tx_hash=tx_hash if anchored else None,
            block_number=block_number if anchored else None,
        )
    return AnchoringStatuses(events=events)


async def receivable_proofs(
    session: AsyncSession, settings: Settings, receivable_id: str, *, latest: bool = False
) -> ReceivableProofs:
    """Every event of a receivable in ``seq`` order, or only the newest, with bundles for the
    anchored ones; :class:`NotFound` when the ledger has no record of the receivable."""
    stmt = select(LedgerRecord).where(col(LedgerRecord.receivable_id) == receivable_id)
    if latest:
        stmt = stmt.order_by(col(LedgerRecord.seq).desc()).limit(1)
    else:
        stmt = stmt.order_by(col(LedgerRecord.seq))
    records = list((await session.execute(stmt)).scalars())
    if not records:
        raise NotFound(f"the ledger has no record of receivable {receivable_id}")
    trees = _Trees(session)
    events = [await _event_proof(record, trees, settings) for record in records]
    return ReceivableProofs(
        receivable_id=receivable_id,
        all_anchored=all(event.bundle is not None for event in events),
        events=events,
    )


async def anchor_info(session: AsyncSession, settings: Settings, batch_id: int) -> AnchorInfo:
    batch = await anchoring.get_batch(session, batch_id)
    if batch is None:
        raise NotFound(f"there is no batch {batch_id}")
    return AnchorInfo(
        batch_id=batch.id,
        status=batch.status,
        root=batch.root,
        leaf_count=batch.leaf_count,
        chain_id=settings.chain_id,
        contract=batch.contract,
        tx_hash=batch.tx_hash,
        block_number=batch.block_number,
        block_hash=batch.block_hash,
        created_at=batch.created_at,
        anchored_at=batch.anchored_at,
        final_at=batch.final_at,
    )


async def anchor_contract(session: AsyncSession, settings: Settings) -> str | None:
    """The ledger's ``ReceivableAnchor`` on its chain (pinned, or from the deployment record)."""
    return (await deployments.addresses(session, settings)).get(ANCHOR_CONTRACT)


async def verify(
    settings: Settings, contract: str | None, bundles: Sequence[tuple[str, Any]]
) -> VerificationReport:
    """Every step of every bundle against the chain at the ledger's RPC endpoint, with the
    ledger's chain id and ``ReceivableAnchor`` address (``contract``) as the expected ones.
    Runs outside any database transaction."""
    reader = RpcChainReader(settings.rpc_url, timeout=RPC_TIMEOUT_SECONDS)
    return await asyncio.to_thread(
        verify_bundles,
        bundles,
        reader,
        expected_chain_id=settings.chain_id,
        expected_contract=contract,
    )
