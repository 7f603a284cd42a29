"""The anchoring pipeline: inbox events → records → Merkle batches → roots on chain → final.

Each step takes the caller's session (the task or the test owns the transaction) and explicit
``settings``, and is safe to run twice and concurrently:

- :func:`build_records` turns inbox events into canonical records chained per receivable by
  ``prev``; an event whose predecessor has not arrived waits, an invalid one is marked rejected in
  the inbox with its reason (kept, never dropped).
- :func:`close_batches` closes batches at ``batch_max_leaves`` or ``batch_max_wait_seconds``; ids
  are allocated under a transaction-scoped advisory lock, so they are 1, 2, 3 … with no gaps.
- :func:`anchor_step` holds the anchoring account's row lock (``ledger.accounts``, ``FOR UPDATE``)
  and first tracks what is on chain (receipts, reorgs, finality), then — only when none of the
  account's transactions is in flight — sends the lowest pending batch with the next nonce.
- :func:`reconcile` reads every anchored batch back with ``batches(uint64)`` and sends again what
  the chain lost; it detects a contract address without code (and, where allowed, redeploys and
  re-anchors from batch 1).

States of a batch: ``pending`` → ``sent`` (signed, nonce taken, broadcast) → ``anchored`` (receipt
in a canonical block) → ``final`` (``confirmations`` deep, or at/below the ``finalized`` block);
back to ``pending`` whenever the chain no longer holds it. docs/anchoring.md describes it all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from web3.exceptions import Web3RPCError

from qilian.kit.settings import Settings
from services.ledger.anchoring import metrics, repository
from services.ledger.anchoring.chain import AnchorChain, AnchorReverted, Receipt
from services.ledger.anchoring.models import AnchorAccount, AnchorBatch, BatchStatus
from services.ledger.anchoring.settings import AnchoringSettings, anchoring_settings
from services.ledger.deployments import service as deployments
from services.ledger.ingest.models import InboxEvent
from services.ledger.records import merkle
from services.ledger.records.canonical import (
    ReceivableEventRecord,
    entry_id,
    new_salt,
    record_hash,
)
from services.ledger.records.keccak import from_hex, to_hex

log = structlog.get_logger(__name__)
T = TypeVar("T")

TOPIC: Final = "receivable.event"
PAYLOAD_MEMBERS: Final = frozenset({"receivable_id", "seq", "type", "at", "actor", "data"})
_PLACEHOLDER_HASH: Final = "0x" + "00" * 32
ANCHOR_CONTRACT: Final = "ReceivableAnchor"


async def _run(fn: Callable[..., T], *args: Any) -> T:
    """A blocking web3 call, off the event loop."""
    return await asyncio.to_thread(fn, *args)


# records ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordsOutcome:
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    return "invalid event: " + "; ".join(parts)


def validate_payload(event_id: str, topic: str, payload: object) -> str | None:
    """Why ``payload`` is not a valid ``receivable.event``, or None when it is."""
    if topic != TOPIC:
        return f"unexpected topic {topic!r}"
    if not isinstance(payload, dict):
        return "invalid event: the payload is not a JSON object"
    missing = sorted(PAYLOAD_MEMBERS - payload.keys())
    extra = sorted(str(k) for k in payload.keys() - PAYLOAD_MEMBERS)
    if missing or extra:
        problems = [f"missing members {missing}"] if missing else []
        problems += [f"unexpected members {extra}"] if extra else []
        return "invalid event: " + ", ".join(problems)
    try:
        _record(event_id, payload, prev=None if payload["seq"] == 1 else _PLACEHOLDER_HASH)
    except ValidationError as exc:
        return _reason(exc)
    return None


def _record(event_id: str, payload: dict[str, Any], prev: str | None) -> ReceivableEventRecord:
    return ReceivableEventRecord.model_validate(
        {**payload, "event_id": event_id, "prev": prev, "salt": new_salt()}
    )


def _order(event: InboxEvent) -> tuple[str, int]:
    payload = event.payload
    if isinstance(payload, dict):
        rid, seq = payload.get("receivable_id"), payload.get("seq")
        if isinstance(rid, str) and type(seq) is int:
            return rid, seq
    return "", 0


async def _build_records_together(
    session: AsyncSession, events: list[InboxEvent]
) -> RecordsOutcome | None:
    """The common case in a few statements: every event valid and new, no seq taken. Returns None
    (having changed nothing) when any event needs the one-by-one path below to decide it."""
    ordered = sorted(events, key=_order)
    if any(validate_payload(e.event_id, e.topic, e.payload) for e in ordered):
        return None
    if await repository.recorded_event_ids(session, [e.event_id for e in ordered]):
        return None
    keys = [(e.payload["receivable_id"], e.payload["seq"] - 1) for e in ordered]
    known = await repository.record_hashes_at(session, [k for k in keys if k[1] >= 1])
    outcome = RecordsOutcome()
    rows: list[dict[str, Any]] = []
    for event in ordered:  # a receivable's events in seq order: a predecessor comes first
        rid, seq = event.payload["receivable_id"], event.payload["seq"]
        prev = known.get((rid, seq - 1)) if seq > 1 else None
        if seq > 1 and prev is None:
            outcome.waiting.append(event.event_id)  # its predecessor has not arrived
            continue
        record = _record(event.event_id, event.payload, prev)
        digest = to_hex(record_hash(record))
        known[(rid, seq)] = digest
        rows.append(
            {
                "event_id": event.event_id,
                "receivable_id": rid,
                "seq": seq,
                "record": record.model_dump(mode="json", by_alias=True),
                "record_hash": digest,
                "entry_id": to_hex(entry_id(event.event_id)),
            }
        )
    if not rows:
        return outcome
    savepoint = await session.begin_nested()
    inserted = await repository.insert_records(session, rows)
    if len(inserted) != len(rows):  # a seq taken by another event: decide one by one
        await savepoint.rollback()
        return None
    await savepoint.commit()
    accepted = [row["event_id"] for row in rows]
    await repository.mark_many_processed(session, accepted)
    outcome.accepted.extend(accepted)
    metrics.RECORDS.labels("accepted").inc(len(accepted))
    return outcome


async def build_records(session: AsyncSession, settings: Settings) -> RecordsOutcome:
    """Turn ready inbox events into records (``prev`` = record_hash of seq − 1)."""
    config = anchoring_settings(settings)
    events = await repository.ready_inbox_events(session, config.records_per_pass)
    together = await _build_records_together(session, events) if events else None
    if together is not None:
        return together
    outcome = RecordsOutcome()
    for event in sorted(events, key=_order):  # a receivable's events in seq order
        reason = validate_payload(event.event_id, event.topic, event.payload)
        if reason is None and await repository.record_exists(session, event.event_id):
            await repository.mark_processed(session, event.event_id)
            continue
        if reason is None:
            rid, seq = event.payload["receivable_id"], event.payload["seq"]
            prev: str | None = None
            if seq > 1:
                before = await repository.record_at(session, rid, seq - 1)
                if before is None:
                    outcome.waiting.append(event.event_id)  # its predecessor has not arrived
                    continue
                prev = before.record_hash
            record = _record(event.event_id, event.payload, prev)
            inserted = await repository.insert_record(
                session,
                event_id=event.event_id,
                receivable_id=rid,
                seq=seq,
                record=record.model_dump(mode="json", by_alias=True),
                record_hash=to_hex(record_hash(record)),
                entry_id=to_hex(entry_id(event.event_id)),
            )
            if inserted:
                await repository.mark_processed(session, event.event_id)
                outcome.accepted.append(event.event_id)
                metrics.RECORDS.labels("accepted").inc()
                continue
            holder = await repository.record_at(session, rid, seq)
            reason = (
                f"seq {seq} of receivable {rid} is taken by event "
                f"{holder.event_id if holder else '(unknown)'}"
            )
        await repository.mark_processed(session, event.event_id, reason)
        outcome.rejected[event.event_id] = reason
        metrics.RECORDS.labels("rejected").inc()
        log.warning("inbox_event_rejected", event_id=event.event_id, reason=reason)
    await session.flush()
    return outcome


# batches ----------------------------------------------------------------------------------------


async def close_batches(
    session: AsyncSession, settings: Settings, *, force: bool = False
) -> list[int]:
    """Close every batch that is due (full, or its oldest record waited ``max_wait``); with
    ``force`` also a last partial one. Returns the new batch ids."""
    config = anchoring_settings(settings)
    await repository.lock_batch_allocation(session)
    closed: list[int] = []
    while True:
        waiting = await repository.unbatched(session)
        if waiting.count == 0:
            break
        due = waiting.count >= config.batch_max_leaves or (
            waiting.oldest_age >= config.batch_max_wait_seconds
        )
        if not (due or force):
            break
        rows = await repository.take_unbatched(session, config.batch_max_leaves)
        tree = merkle.build([(from_hex(e, length=32), from_hex(h, length=32)) for _, e, h in rows])
        batch_id = await repository.next_batch_id(session)
        await repository.insert_batch(
            session, batch_id, to_hex(tree.root), len(rows), tree.dump(), [r[0] for r in rows]
        )
        closed.append(batch_id)
        log.info("batch_closed", batch_id=batch_id, leaves=len(rows), root=to_hex(tree.root))
    return closed


# chain ------------------------------------------------------------------------------------------

_chains: dict[tuple[str, str, str], AnchorChain] = {}


def chain_for(settings: Settings, contract: str) -> AnchorChain:
    """A (cached) :class:`AnchorChain` for this endpoint, contract and key."""
    key = (settings.rpc_url, contract.lower(), settings.anchorer_private_key)
    chain = _chains.get(key)
    if chain is None:
        chain = _chains[key] = AnchorChain(
            settings.rpc_url, contract, settings.anchorer_private_key
        )
    return chain


async def anchor_contract(session: AsyncSession, settings: Settings) -> str | None:
    return (await deployments.addresses(session, settings)).get(ANCHOR_CONTRACT)


def _now() -> datetime:
    return repository.utcnow()


def _is_final(block_number: int, head: int, finalized: int | None, cfg: AnchoringSettings) -> bool:
    if cfg.finality == "finalized":
        return finalized is not None and block_number <= finalized
    return head - block_number + 1 >= cfg.confirmations


def _mark_anchored(batch: AnchorBatch, receipt: Receipt) -> None:
    batch.status = BatchStatus.ANCHORED.value
    batch.block_number = receipt.block_number
    batch.block_hash = receipt.block_hash
    batch.gas_used = receipt.gas_used
    batch.anchored_at = _now()
    batch.last_error = None


@dataclass
class StepOutcome:
    """What one :func:`anchor_step` did."""

    sent: int | None = None  # batch id broadcast in this step
    in_flight: bool = False  # a transaction of the account is waiting for its receipt
    anchored: list[int] = field(default_factory=list)
    final: list[int] = field(default_factory=list)
    reset: list[int] = field(default_factory=list)  # sent back to pending
    error: str | None = None


async def _track(
    session: AsyncSession, chain: AnchorChain, cfg: AnchoringSettings, out: StepOutcome
) -> None:
    """Follow every sent or anchored batch: receipt, canonical block, finality."""
    open_batches = await repository.batches_with(session, [BatchStatus.SENT, BatchStatus.ANCHORED])
    if not open_batches:
        return
    head = await _run(chain.head)
    finalized = await _run(chain.finalized_number) if cfg.finality == "finalized" else None
    for batch in open_batches:
        receipt = await _run(chain.receipt, batch.tx_hash) if batch.tx_hash else None
        if receipt is not None:
            canonical = await _run(chain.block_hash, receipt.block_number)
            if canonical != receipt.block_hash:
                receipt = None
        if receipt is None:
            known = batch.tx_hash is not None and await _run(chain.transaction_known, batch.tx_hash)
            if batch.status == BatchStatus.ANCHORED.value:
                metrics.REORGS.inc()
                log.warning(
                    "anchored_block_left_chain",
                    batch_id=batch.id,
                    block_number=batch.block_number,
                    block_hash=batch.block_hash,
                    tx_pool=known,
                )
            if known:  # waiting in the node's pool (again, after a reorg)
                batch.status = BatchStatus.SENT.value
                batch.block_number = batch.block_hash = None
                continue
            metrics.TRANSACTIONS.labels("dropped").inc()
            repository.to_pending(batch, f"transaction {batch.tx_hash} is no longer on chain")
            out.reset.append(batch.id)
            continue
        if receipt.status != 1:
            metrics.TRANSACTIONS.labels("reverted").inc()
            if not await _landed_elsewhere(chain, batch, out):
                repository.to_pending(batch, f"transaction {batch.tx_hash} reverted")
                out.reset.append(batch.id)
                log.warning("anchoring_transaction_reverted", batch_id=batch.id)
            continue
        if (batch.id, batch.root) not in receipt.anchored:
            # mined and successful, yet no RootAnchored of this batch: it anchored nothing (a
            # transaction to an address without code, after a chain wipe, succeeds as a plain call)
            metrics.TRANSACTIONS.labels("no_event").inc()
            repository.to_pending(
                batch, f"transaction {batch.tx_hash} emitted no RootAnchored for this batch"
            )
            out.reset.append(batch.id)
            log.error(
                "anchoring_transaction_without_event",
                batch_id=batch.id,
                tx_hash=batch.tx_hash,
                contract=chain.address,
            )
            continue
        if batch.status == BatchStatus.SENT.value:
            _mark_anchored(batch, receipt)
            metrics.TRANSACTIONS.labels("mined").inc()
            metrics.GAS_USED.inc(receipt.gas_used)
            metrics.LAST_GAS_USED.set(receipt.gas_used)
            out.anchored.append(batch.id)
            log.info(
                "batch_anchored",
                batch_id=batch.id,
                tx_hash=batch.tx_hash,
                block_number=receipt.block_number,
                gas_used=receipt.gas_used,
            )
        elif batch.block_hash != receipt.block_hash:  # re-mined in another block after a reorg
            metrics.REORGS.inc()
            log.warning("anchored_batch_remined", batch_id=batch.id, block=receipt.block_number)
            _mark_anchored(batch, receipt)
        assert batch.block_number is not None
        if _is_final(batch.block_number, head, finalized, cfg):
            batch.status = BatchStatus.FINAL.value
            batch.final_at = _now()
            out.final.append(batch.id)
    await session.flush()


async def _landed_elsewhere(chain: AnchorChain, batch: AnchorBatch, out: StepOutcome) -> bool:
    """Whether the chain holds this batch's root already (through another transaction); if so the
    batch is marked anchored where that transaction is."""
    on_chain = await _run(chain.batch, batch.id)
    if on_chain.root != from_hex(batch.root, length=32):
        return False
    found = await _run(chain.anchored_log, batch.id)
    if found is None:
        return False
    batch.status = BatchStatus.ANCHORED.value
    batch.contract = chain.address.lower()
    batch.tx_hash = found.tx_hash
    batch.block_number = found.block_number
    batch.block_hash = found.block_hash
    batch.anchored_at = _now()
    batch.last_error = None
    out.anchored.append(batch.id)
    log.info("batch_already_anchored", batch_id=batch.id, tx_hash=found.tx_hash)
    return True


class NonceSource(Protocol):
    """A contract client signing with an account (anchoring's, the registry's)."""

    def nonce(self, block: str = "pending") -> int: ...


async def sync_nonce(chain: NonceSource, account: AnchorAccount, is_new: bool) -> None:
    """The ledger's nonce is the authority; with nothing in flight it must equal the chain's count.

    A difference means the chain was rewound (reorg, reset) or the key was used elsewhere: it is
    logged and the chain's count adopted. Called only under the account's row lock, by every
    sender of the account (anchoring and the FinancingRegistry operations).
    """
    on_chain = await _run(chain.nonce, "pending")
    if on_chain != account.next_nonce:
        if not is_new:
            metrics.NONCE_RESYNCS.inc()
            log.warning(
                "anchoring_nonce_resynced",
                address=account.address,
                ledger=account.next_nonce,
                chain=on_chain,
            )
        account.next_nonce = on_chain


async def _send_next(
    session: AsyncSession,
    chain: AnchorChain,
    account: AnchorAccount,
    is_new: bool,
    out: StepOutcome,
) -> None:
    batch = await repository.lowest_pending(session)
    if batch is None:
        return
    if not await _run(chain.has_code):
        # a wiped chain: sending would "succeed" as a plain call; reconciliation reports it and,
        # in development, redeploys
        metrics.CONTRACT_MISSING.set(1)
        out.error = f"no contract code at {chain.address}; waiting for reconciliation"
        log.error("anchor_contract_missing", address=chain.address, batch_id=batch.id)
        return
    await sync_nonce(chain, account, is_new)
    root = from_hex(batch.root, length=32)
    try:
        gas = await _run(chain.simulate, batch.id, root, batch.leaf_count)
    except AnchorReverted as revert:
        await _refused(session, chain, batch, revert, out)
        return
    nonce = account.next_nonce
    signed = await _run(chain.sign, batch.id, root, batch.leaf_count, nonce, gas)
    batch.status = BatchStatus.SENT.value
    batch.contract = chain.address.lower()
    batch.sender = chain.sender.lower()
    batch.tx_hash = signed.tx_hash
    batch.nonce = nonce
    batch.block_number = batch.block_hash = None
    batch.sent_at = _now()
    batch.attempts += 1
    batch.last_error = None
    account.next_nonce = nonce + 1
    account.updated_at = _now()
    await session.flush()
    try:
        await _run(chain.broadcast, signed)
    except (Web3RPCError, ValueError) as exc:  # refused by the node: nothing was sent
        repository.to_pending(batch, f"broadcast refused: {exc}")
        account.next_nonce = nonce
        out.error = batch.last_error
        log.error("anchoring_broadcast_refused", batch_id=batch.id, nonce=nonce, error=str(exc))
        await session.flush()
        return
    metrics.TRANSACTIONS.labels("sent").inc()
    out.sent = batch.id
    out.in_flight = True
    log.info("batch_sent", batch_id=batch.id, tx_hash=signed.tx_hash, nonce=nonce)


async def _refused(
    session: AsyncSession,
    chain: AnchorChain,
    batch: AnchorBatch,
    revert: AnchorReverted,
    out: StepOutcome,
) -> None:
    """``anchorRoot`` would revert: decide from the contract's reason."""
    if revert.name == "BatchAlreadyAnchored":
        if await _landed_elsewhere(chain, batch, out):  # idempotent: the same root landed
            await session.flush()
            return
        on_chain = await _run(chain.batch, batch.id)
        batch.last_error = f"batch {batch.id} holds another root on chain: {to_hex(on_chain.root)}"
        metrics.CONFLICTS.inc()
        log.error(
            "anchoring_conflict",
            batch_id=batch.id,
            ours=batch.root,
            on_chain=to_hex(on_chain.root),
            contract=chain.address,
        )
    elif revert.name == "BatchIdGap":
        expected = int(revert.args_[0])
        out.reset.extend(
            await repository.reset_from(
                session, expected, f"the chain expects batch {expected} next"
            )
        )
        log.warning("anchoring_chain_behind", expected=expected, batch_id=batch.id)
    else:
        batch.last_error = f"anchorRoot reverts: {revert}"
        log.error("anchoring_refused", batch_id=batch.id, error=str(revert))
    out.error = batch.last_error or f"anchorRoot reverts: {revert}"
    await session.flush()


async def anchor_step(session: AsyncSession, settings: Settings) -> StepOutcome:
    """Track the account's transactions, then send the next pending batch if none is in flight.

    Everything happens under the anchoring account's row lock, so concurrent callers (workers,
    beat overlap, tests) take turns and one transaction at most is in flight per account.
    """
    cfg = anchoring_settings(settings)
    out = StepOutcome()
    contract = await anchor_contract(session, cfg)
    if contract is None:
        out.error = "no ReceivableAnchor deployment for this chain"
        log.warning("anchor_contract_unknown", chain_id=cfg.chain_id)
        return out
    chain = chain_for(cfg, contract)
    account, is_new = await repository.lock_account(session, chain.sender.lower())
    await _track(session, chain, cfg, out)
    if await repository.in_flight(session, chain.sender):
        out.in_flight = True
        return out
    await _send_next(session, chain, account, is_new, out)
    return out


# reconciliation ---------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    checked: int = 0
    reset: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    contract_missing: bool = False
    redeployed: str | None = None
    error: str | None = None


async def reconcile(session: AsyncSession, settings: Settings) -> ReconcileReport:
    """Read every anchored and final batch back from the chain; send again what it lost.

    A contract address without code (a wiped development chain) is logged as an error and
    reported; when ``may_redeploy`` (development by default) and the address is not pinned by
    configuration, the contracts are redeployed and every batch is anchored again from batch 1.
    """
    cfg = anchoring_settings(settings)
    report = ReconcileReport()
    contract = await anchor_contract(session, cfg)
    if contract is None:
        report.error = "no ReceivableAnchor deployment for this chain"
        log.warning("anchor_contract_unknown", chain_id=cfg.chain_id)
        return report
    chain = chain_for(cfg, contract)
    chain_id = await _run(chain.chain_id)
    if chain_id != cfg.chain_id:
        report.error = f"RPC chain id {chain_id} differs from configured {cfg.chain_id}"
        log.error("anchoring_wrong_chain", rpc=chain_id, configured=cfg.chain_id)
        return report
    await repository.lock_account(session, chain.sender.lower())
    if not await _run(chain.has_code):
        report.contract_missing = True
        metrics.CONTRACT_MISSING.set(1)
        log.error(
            "anchor_contract_missing",
            address=contract,
            chain_id=chain_id,
            hint="the chain was reset or the address is wrong; nothing can be anchored",
        )
        if not cfg.may_redeploy or cfg.contract_address(ANCHOR_CONTRACT):
            report.error = f"no code at {contract}"
            return report
        addresses = await deployments.ensure_deployed(session, cfg)
        report.redeployed = addresses[ANCHOR_CONTRACT]
        report.reset = await repository.reset_from(
            session, 1, f"contract redeployed at {report.redeployed}; anchoring again"
        )
        metrics.RECONCILE_RESETS.inc(len(report.reset))
        metrics.CONTRACT_MISSING.set(0)
        log.warning(
            "anchor_contract_redeployed",
            address=report.redeployed,
            reanchoring=len(report.reset),
        )
        return report
    metrics.CONTRACT_MISSING.set(0)
    for batch in await repository.batches_with(session, [BatchStatus.ANCHORED, BatchStatus.FINAL]):
        report.checked += 1
        on_chain = await _run(chain.batch, batch.id)
        here = batch.contract is None or batch.contract == chain.address.lower()
        if not on_chain.exists or not here:
            repository.to_pending(batch, "root missing on chain; anchoring again")
            report.reset.append(batch.id)
        elif on_chain.root != from_hex(batch.root, length=32):
            batch.last_error = f"batch {batch.id} holds another root on chain"
            report.conflicts.append(batch.id)
            metrics.CONFLICTS.inc()
            log.error(
                "anchoring_conflict",
                batch_id=batch.id,
                ours=batch.root,
                on_chain=to_hex(on_chain.root),
                contract=chain.address,
            )
    if report.reset:
        metrics.RECONCILE_RESETS.inc(len(report.reset))
        log.warning("anchoring_reconciled", reset=report.reset, checked=report.checked)
    await session.flush()
    return report


# metrics ----------------------------------------------------------------------------------------


async def refresh_metrics(session: AsyncSession) -> None:
    metrics.ANCHORING_LAG.set(await repository.anchoring_lag(session))
    metrics.INBOX_WAITING.set(await repository.waiting_events(session))
    counts = await repository.status_counts(session)
    for status in BatchStatus:
        metrics.BATCHES.labels(status.value).set(counts.get(status.value, 0))
