"""FinancingRegistry operations: accept the API's requests, send them one at a time, report back.

- :func:`accept` (the ``financing.registry`` outbox consumer) validates a request, computes its
  on-chain values (:mod:`.fingerprints`) and inserts it once (``ON CONFLICT DO NOTHING`` on the
  ``operation_id``).
- :func:`step` holds the **anchoring account's** row lock (``ledger.accounts``): the registry's
  registrar is the anchoring account, so the two share one nonce sequence and the rule "one
  transaction in flight per account" (``anchoring.repository.in_flight`` looks at both tables; see
  docs/decisions/0014-registry-saga.md). Under the lock it follows the sent operations (receipt,
  revert, dropped) and, only when nothing of the account is in flight, simulates the lowest pending
  operation (``eth_estimateGas``): a refusal costs no gas; otherwise it signs with the ledger's next
  nonce, records ``sent`` and broadcasts.
- An outcome (``done`` or ``refused``) is recorded together with a ``financing.registry_result``
  outbox event, in the same transaction.

Idempotency against crashes: a transaction that was mined but never recorded (a crash between
broadcast and commit) is found by the next simulation — ``register`` reverts ``AlreadyFinanced``
with our own ``financingRef`` and ``release`` reverts ``NotFinanced`` — and is taken as ``done``,
never sent with a second effect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Self, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from sqlalchemy.ext.asyncio import AsyncSession
from web3.exceptions import Web3RPCError

from qilian.kit import outbox
from qilian.kit.settings import Settings
from services.ledger.anchoring import repository as accounts
from services.ledger.anchoring import service as anchoring
from services.ledger.anchoring.models import AnchorAccount
from services.ledger.deployments import service as deployments
from services.ledger.records.keccak import to_hex
from services.ledger.registry import metrics, repository
from services.ledger.registry.chain import CONTRACT, Call, RegistryChain, RegistryReverted, Status
from services.ledger.registry.fingerprints import on_chain_values
from services.ledger.registry.models import OperationState, RegistryOperation

log = structlog.get_logger(__name__)
T = TypeVar("T")

REQUEST_TOPIC: Final = "financing.registry"
RESULT_TOPIC: Final = "financing.registry_result"
Outcome = Literal["done", "refused"]
# reverts about the sender, not the operation: the operation waits until they are fixed
NOT_THE_OPERATION: Final = frozenset({"NotRegistrar"})


async def _run(fn: Callable[..., T], *args: Any) -> T:
    """A blocking web3 call, off the event loop."""
    return await asyncio.to_thread(fn, *args)


# requests ---------------------------------------------------------------------------------------


class OperationRequest(BaseModel):
    """The payload of a ``financing.registry`` event (the API's request)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    operation_id: str = Field(min_length=1, max_length=64)
    action: Literal["register", "release"]
    financing_id: str = Field(min_length=1, max_length=64)
    receivable_id: str = Field(min_length=1, max_length=64)
    invoice_fingerprint: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    part: StrictBool = False
    reason: int | None = Field(default=None, ge=1, le=4)

    @model_validator(mode="after")
    def _reason_only_for_release(self) -> Self:
        if self.action == "release" and self.reason is None:
            raise ValueError("reason is required to release (1 repaid … 4 other)")
        if self.action == "register" and self.reason is not None:
            raise ValueError("reason is only for release")
        return self


async def accept(session: AsyncSession, settings: Settings, payload: Any) -> bool:
    """Record a requested operation; False when it was known (the same ``operation_id``).

    An invalid payload raises ``pydantic.ValidationError``: the outbox keeps the event with that
    error and dead-letters it after its attempts (visible in ``qilian outbox status``).
    """
    request = OperationRequest.model_validate(payload)
    values = on_chain_values(
        settings.registry_key.get_secret_value(),
        invoice_fingerprint=request.invoice_fingerprint.lower(),
        financing_id=request.financing_id,
        receivable_id=request.receivable_id,
        part=request.part,
    )
    inserted = await repository.insert_operation(
        session,
        {
            "operation_id": request.operation_id,
            "action": request.action,
            "financing_id": request.financing_id,
            "receivable_id": request.receivable_id,
            "part": request.part,
            "fingerprint": values.fingerprint,
            "invoice_fingerprint": values.invoice_fingerprint,
            "financing_ref": values.financing_ref,
            "reason": request.reason,
        },
    )
    if inserted:
        log.info(
            "registry_operation_accepted",
            operation_id=request.operation_id,
            action=request.action,
            financing_id=request.financing_id,
        )
        return True
    known = await repository.get(session, request.operation_id)
    if known is not None and (known.action, known.financing_id, known.fingerprint) != (
        request.action,
        request.financing_id,
        values.fingerprint,
    ):  # the first request stands; a reused id with other content is a bug of the caller
        log.error(
            "registry_operation_id_reused",
            operation_id=request.operation_id,
            kept=(known.action, known.financing_id),
            ignored=(request.action, request.financing_id),
        )
    return False


# chain ------------------------------------------------------------------------------------------

_chains: dict[tuple[str, str, str], RegistryChain] = {}


def chain_for(settings: Settings, contract: str) -> RegistryChain:
    """A (cached) :class:`RegistryChain` signing with the anchoring account (the registrar)."""
    key = (settings.rpc_url, contract.lower(), settings.anchorer_private_key)
    chain = _chains.get(key)
    if chain is None:
        chain = _chains[key] = RegistryChain(
            settings.rpc_url, contract, settings.anchorer_private_key
        )
    return chain


async def registry_contract(session: AsyncSession, settings: Settings) -> str | None:
    return (await deployments.addresses(session, settings)).get(CONTRACT)


def _call(operation: RegistryOperation) -> Call:
    return Call(
        action=operation.action,
        fingerprint=operation.fingerprint,
        invoice_fingerprint=operation.invoice_fingerprint,
        financing_ref=operation.financing_ref,
        reason=operation.reason,
    )


@dataclass
class StepOutcome:
    """What one :func:`step` did."""

    sent: str | None = None  # operation id broadcast in this step
    in_flight: bool = False  # a transaction of the account is waiting for its receipt
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)  # back to pending (dropped, reverted)
    error: str | None = None

    @property
    def decided(self) -> bool:
        return bool(self.done or self.refused)


def result_payload(operation: RegistryOperation) -> dict[str, Any]:
    """The ``financing.registry_result`` event of a decided operation."""
    return {
        "operation_id": operation.operation_id,
        "action": operation.action,
        "financing_id": operation.financing_id,
        "receivable_id": operation.receivable_id,
        "outcome": operation.state,
        "error": operation.error,
        "fingerprint": operation.fingerprint,
        "financing_ref": operation.financing_ref,
        "tx_hash": operation.tx_hash,
        "block_number": operation.block_number,
    }


async def _finish(
    session: AsyncSession,
    operation: RegistryOperation,
    outcome: Outcome,
    out: StepOutcome,
    *,
    error: str | None = None,
    tx_hash: str | None = None,
    block_number: int | None = None,
) -> None:
    operation.state = outcome
    operation.error = error
    operation.tx_hash = tx_hash
    operation.block_number = block_number
    operation.last_error = None
    operation.completed_at = operation.updated_at = repository.utcnow()
    await session.flush()
    await outbox.emit(session, RESULT_TOPIC, result_payload(operation))
    (out.done if outcome == "done" else out.refused).append(operation.operation_id)
    metrics.OUTCOMES.labels(outcome).inc()
    log.info(
        "registry_operation_" + outcome,
        operation_id=operation.operation_id,
        action=operation.action,
        financing_id=operation.financing_id,
        error=error,
        tx_hash=tx_hash,
        block_number=block_number,
    )


def _already_so(operation: RegistryOperation, revert: RegistryReverted) -> bool:
    """The revert says the chain already holds this operation's effect."""
    if operation.action == "release":
        return revert.name == "NotFinanced"
    return (
        revert.name == "AlreadyFinanced"
        and len(revert.args_) == 2
        and to_hex(bytes(revert.args_[1])) == operation.financing_ref
    )


async def _decide(
    session: AsyncSession,
    chain: RegistryChain,
    operation: RegistryOperation,
    revert: RegistryReverted,
    out: StepOutcome,
) -> None:
    """The contract refuses the operation (simulated or mined): done when its effect is on chain
    already, else refused with the error's name. ``NotRegistrar`` refuses the ledger's key, not the
    operation: it stays pending (an operator must fix the registrar) and holds back the others."""
    if revert.name in NOT_THE_OPERATION:
        repository.to_pending(operation, f"the contract refuses the sender: {revert}")
        out.error = operation.last_error
        log.error(
            "registry_sender_refused",
            operation_id=operation.operation_id,
            error=str(revert),
            sender=chain.sender,
            hint="the ledger's account is not the FinancingRegistry's registrar (setRegistrar)",
        )
        await session.flush()
        return
    if _already_so(operation, revert):
        landed = await _run(chain.landed, _call(operation))
        await _finish(
            session,
            operation,
            "done",
            out,
            tx_hash=landed.tx_hash if landed else None,
            block_number=landed.block_number if landed else None,
        )
        return
    await _finish(
        session,
        operation,
        "refused",
        out,
        error=revert.name,
        tx_hash=operation.tx_hash,
        block_number=operation.block_number,
    )


async def _track(session: AsyncSession, chain: RegistryChain, out: StepOutcome) -> None:
    """Follow every sent operation: mined (done), reverted (decided again), dropped (re-sent)."""
    for operation in await repository.with_state(session, [OperationState.SENT]):
        assert operation.tx_hash is not None
        receipt = await _run(chain.receipt, operation.tx_hash)
        if receipt is None:
            if await _run(chain.transaction_known, operation.tx_hash):
                continue  # waiting in the node's pool
            metrics.TRANSACTIONS.labels("dropped").inc()
            log.warning(
                "registry_transaction_dropped",
                operation_id=operation.operation_id,
                tx_hash=operation.tx_hash,
            )
            repository.to_pending(operation, f"transaction {operation.tx_hash} is no longer known")
            out.reset.append(operation.operation_id)
            continue
        metrics.GAS_USED.inc(receipt.gas_used)
        if receipt.status == 1:
            metrics.TRANSACTIONS.labels("mined").inc()
            await _finish(
                session,
                operation,
                "done",
                out,
                tx_hash=receipt.tx_hash,
                block_number=receipt.block_number,
            )
            continue
        # reverted on chain (its state changed between simulation and mining): ask again
        metrics.TRANSACTIONS.labels("reverted").inc()
        operation.block_number = receipt.block_number
        try:
            await _run(chain.simulate, _call(operation))
        except RegistryReverted as revert:
            await _decide(session, chain, operation, revert, out)
            continue
        repository.to_pending(operation, f"transaction {operation.tx_hash} reverted; sending again")
        out.reset.append(operation.operation_id)
        log.warning("registry_transaction_reverted", operation_id=operation.operation_id)
    await session.flush()


async def _send_next(
    session: AsyncSession,
    chain: RegistryChain,
    account: AnchorAccount,
    is_new: bool,
    out: StepOutcome,
) -> None:
    operation = await repository.lowest_pending(session)
    if operation is None:
        return
    if not await _run(chain.has_code):
        out.error = f"no FinancingRegistry code at {chain.address}"
        log.error("registry_contract_missing", address=chain.address)
        return
    await anchoring.sync_nonce(chain, account, is_new)
    call = _call(operation)
    try:
        gas = await _run(chain.simulate, call)
    except RegistryReverted as revert:
        await _decide(session, chain, operation, revert, out)
        return
    nonce = account.next_nonce
    signed = await _run(chain.sign, call, nonce, gas)
    operation.state = OperationState.SENT.value
    operation.contract = chain.address.lower()
    operation.sender = chain.sender.lower()
    operation.nonce = nonce
    operation.tx_hash = signed.tx_hash
    operation.block_number = None
    operation.attempts += 1
    operation.sent_at = operation.updated_at = repository.utcnow()
    operation.last_error = None
    account.next_nonce = nonce + 1
    account.updated_at = repository.utcnow()
    await session.flush()
    try:
        await _run(chain.broadcast, signed)
    except (Web3RPCError, ValueError) as exc:  # refused by the node: nothing was sent
        repository.to_pending(operation, f"broadcast refused: {exc}")
        account.next_nonce = nonce
        out.error = operation.last_error
        log.error(
            "registry_broadcast_refused",
            operation_id=operation.operation_id,
            nonce=nonce,
            error=str(exc),
        )
        await session.flush()
        return
    metrics.TRANSACTIONS.labels("sent").inc()
    out.sent = operation.operation_id
    out.in_flight = True
    log.info(
        "registry_operation_sent",
        operation_id=operation.operation_id,
        action=operation.action,
        tx_hash=signed.tx_hash,
        nonce=nonce,
    )


async def step(session: AsyncSession, settings: Settings) -> StepOutcome:
    """Track the account's registry transactions, then send (or decide) the next pending operation
    if none of the account's transactions is in flight. Idle (no open operation): no chain call,
    no lock."""
    out = StepOutcome()
    if not await repository.has_open(session):
        return out
    contract = await registry_contract(session, settings)
    if contract is None:
        out.error = "no FinancingRegistry deployment for this chain"
        log.warning("registry_contract_unknown", chain_id=settings.chain_id)
        return out
    chain = chain_for(settings, contract)
    account, is_new = await accounts.lock_account(session, chain.sender.lower())
    await _track(session, chain, out)
    if await accounts.in_flight(session, chain.sender):
        out.in_flight = True
        return out
    await _send_next(session, chain, account, is_new, out)
    return out


# reconciliation ---------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What one :func:`reconcile` found."""

    checked: int = 0
    resent: list[str] = field(default_factory=list)  # operations put back to pending
    conflicts: list[str] = field(default_factory=list)  # fingerprints held for another financing
    error: str | None = None


async def reconcile(session: AsyncSession, settings: Settings) -> ReconcileReport:
    """Read back what the chain holds for every fingerprint whose last operation is done.

    A chain can lose a transaction the ledger saw confirmed (a node restarted from an older
    state, a reorganisation deeper than the confirmations): a registration no longer active is
    registered again, a release undone is released again — the operation goes back to
    ``pending`` and :func:`step` sends it (its second ``financing.registry_result`` is a no-op
    for the API). A fingerprint active for another ``financingRef`` after our registration is a
    conflict: logged as an error and left for an operator.

    The read-back itself takes no lock, so anchoring and registry sends go on meanwhile; only
    the fingerprints that look lost are read again under the account's row lock, like
    :func:`step`, and acted on.
    """
    report = ReconcileReport()
    if not await repository.has_done(session):
        return report  # nothing registered yet: no chain call, no lock
    contract = await registry_contract(session, settings)
    if contract is None:
        report.error = "no FinancingRegistry deployment for this chain"
        return report
    chain = chain_for(settings, contract)
    if not await _run(chain.has_code):
        report.error = f"no FinancingRegistry code at {chain.address}"
        log.error("registry_contract_missing", address=chain.address)
        return report
    suspects: list[str] = []
    for operation in await repository.last_done_per_fingerprint(session, lock=False):
        report.checked += 1
        if _drift(operation, await _run(chain.status, operation.fingerprint)) is not None:
            suspects.append(operation.fingerprint)
    if not suspects:
        return report
    account, is_new = await accounts.lock_account(session, chain.sender.lower())
    if is_new:  # a row made here starts at the chain's count (nothing of it can be in flight)
        await anchoring.sync_nonce(chain, account, is_new)
    for operation in await repository.last_done_per_fingerprint(session, fingerprints=suspects):
        status = await _run(chain.status, operation.fingerprint)
        drift = _drift(operation, status)
        if drift is None:
            continue  # settled meanwhile
        if drift == "conflict":
            report.conflicts.append(operation.fingerprint)
            log.error(
                "registry_fingerprint_taken",
                operation_id=operation.operation_id,
                financing_id=operation.financing_id,
                fingerprint=operation.fingerprint,
                held_by=status.financing_ref,
            )
            continue
        repository.to_pending(operation, drift)
        operation.completed_at = None
        report.resent.append(operation.operation_id)
        metrics.TRANSACTIONS.labels("lost").inc()
        log.warning(
            "registry_operation_lost_on_chain",
            operation_id=operation.operation_id,
            action=operation.action,
            financing_id=operation.financing_id,
        )
    await session.flush()
    return report


def _drift(operation: RegistryOperation, status: Status) -> str | None:
    """How the chain differs from the done ``operation``: ``None`` when it agrees,
    ``"conflict"`` when another financing holds the fingerprint, else why it is sent again."""
    ours = status.active and status.financing_ref == operation.financing_ref
    if operation.action == "register":
        if ours:
            return None
        if status.active:
            return "conflict"
        return "the chain no longer holds this registration; registering again"
    if not ours:
        return None  # released, or registered since by another financing
    return "the chain holds this financing again; releasing again"


# reads ------------------------------------------------------------------------------------------


async def chain_status(session: AsyncSession, settings: Settings, fingerprint: str) -> Status:
    """``status(bytes32)`` of the FinancingRegistry; ``LookupError`` without a deployment."""
    contract = await registry_contract(session, settings)
    if contract is None:
        raise LookupError("no FinancingRegistry deployment for this chain")
    return await _run(chain_for(settings, contract).status, fingerprint)


async def refresh_metrics(session: AsyncSession) -> None:
    counts = await repository.state_counts(session)
    for state in OperationState:
        metrics.OPERATIONS.labels(state.value).set(counts.get(state.value, 0))
    metrics.OLDEST_OPEN.set(await repository.oldest_open_age(session))
