"""Background jobs of the FinancingRegistry operations (loaded by the worker by module name).

- ``ledger.registry.accept_operation``: the consumer of ``financing.registry`` outbox events; it
  records each operation once (its ``operation_id`` is the idempotency key).
- ``ledger.registry.reconcile``: beat runs it every minute (and each worker once at start): what
  the chain lost of the done operations is sent again (:func:`service.reconcile`).
- ``ledger.registry.tick``: beat runs it every second; it steps until nothing is in flight or
  ``receipt_wait_seconds`` have passed. An unreachable chain stops the pass with a warning; the
  operations stay ``pending``/``sent`` and the next tick carries on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery.signals import worker_ready
from sqlalchemy.ext.asyncio import AsyncSession
from web3.exceptions import Web3Exception

from qilian.kit import db
from qilian.kit.outbox import Envelope
from qilian.kit.settings import Settings, get_settings
from qilian.kit.tasks import outbox_consumer, run_async, task
from services.ledger.anchoring.settings import anchoring_settings
from services.ledger.registry import metrics, service

log = structlog.get_logger(__name__)

TICK_TASK = "ledger.registry.tick"
RECONCILE_TASK = "ledger.registry.reconcile"
# the chain did not answer (connection refused, timeout) or answered with a JSON-RPC error
CHAIN_UNAVAILABLE: tuple[type[BaseException], ...] = (OSError, Web3Exception)


@outbox_consumer(service.REQUEST_TOPIC)
async def accept_operation(session: AsyncSession, envelope: Envelope) -> None:
    await service.accept(session, get_settings(), envelope.payload)


@dataclass
class TickReport:
    sent: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    error: str | None = None


async def tick(settings: Settings) -> TickReport:
    """Step the operations, each step in its own transaction, for up to ``receipt_wait_seconds``."""
    cfg = anchoring_settings(settings)
    report = TickReport()
    deadline = time.monotonic() + cfg.receipt_wait_seconds
    while True:
        try:
            async with db.transaction() as session:
                step = await service.step(session, cfg)
        except CHAIN_UNAVAILABLE as exc:
            metrics.CHAIN_ERRORS.inc()
            report.error = f"chain unavailable: {exc!r}"[:1000]
            log.warning("registry_chain_unavailable", rpc_url=cfg.rpc_url, error=repr(exc))
            break
        report.done.extend(step.done)
        report.refused.extend(step.refused)
        if step.sent is not None:
            report.sent.append(step.sent)
        if step.error:
            report.error = step.error
            break
        if time.monotonic() >= deadline:
            break
        if step.in_flight:
            await asyncio.sleep(0.1)  # wait for the receipt
        elif not (step.decided or step.reset):
            break  # nothing open, or nothing more to do now
    async with db.transaction() as session:
        await service.refresh_metrics(session)
    return report


@task(TICK_TASK, max_retries=0, autoretry_for=())
def tick_task() -> dict[str, Any]:
    """Beat's pass; a failed pass is simply the next tick's work."""
    report = run_async(tick(get_settings()))
    return {"sent": report.sent, "done": report.done, "refused": report.refused}


async def reconcile(settings: Settings) -> service.ReconcileReport:
    async with db.transaction() as session:
        return await service.reconcile(session, anchoring_settings(settings))


@task(RECONCILE_TASK, max_retries=0, autoretry_for=())
def reconcile_task() -> dict[str, Any]:
    """Beat's read-back of the registry; an unreachable chain waits for the next one."""
    try:
        report = run_async(reconcile(get_settings()))
    except CHAIN_UNAVAILABLE as exc:
        log.warning("registry_reconcile_chain_unavailable", error=repr(exc))
        return {"error": repr(exc)}
    return {"checked": report.checked, "resent": report.resent, "conflicts": report.conflicts}


@worker_ready.connect
def _reconcile_at_start(sender: Any = None, **_: Any) -> None:
    """Once when a worker starts (the chain may have lost transactions while it was down)."""
    app = getattr(sender, "app", None)
    if app is not None:
        app.send_task(RECONCILE_TASK)
