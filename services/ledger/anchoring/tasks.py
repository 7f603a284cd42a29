"""Background jobs of the anchoring pipeline (loaded by the worker by module name).

Beat runs ``ledger.anchoring.tick`` every second (records → batches → anchoring, bounded by
``receipt_wait_seconds``) and ``ledger.anchoring.reconcile`` every minute; reconciliation also runs
once when a worker starts. Every task is idempotent and serialised by database locks, so overlap
between beat ticks, or two workers, is harmless.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery.signals import worker_ready

from qilian.kit import db
from qilian.kit.settings import Settings, get_settings
from qilian.kit.tasks import run_async, task
from services.ledger.anchoring import service
from services.ledger.anchoring.settings import anchoring_settings

log = structlog.get_logger(__name__)

RECONCILE_TASK = "ledger.anchoring.reconcile"


@dataclass
class TickReport:
    accepted: int = 0
    rejected: int = 0
    closed: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    final: list[int] = field(default_factory=list)


async def tick(settings: Settings) -> TickReport:
    """One pass of the pipeline, each step in its own transaction."""
    cfg = anchoring_settings(settings)
    report = TickReport()
    async with db.transaction() as session:
        records = await service.build_records(session, cfg)
    report.accepted, report.rejected = len(records.accepted), len(records.rejected)
    async with db.transaction() as session:
        report.closed = await service.close_batches(session, cfg)
    deadline = time.monotonic() + cfg.receipt_wait_seconds
    while True:
        async with db.transaction() as session:
            step = await service.anchor_step(session, cfg)
        report.final.extend(step.final)
        if step.sent is not None:
            report.sent.append(step.sent)
        if not step.in_flight or step.error or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1 if step.sent is not None else 0.25)  # wait for the receipt
    async with db.transaction() as session:
        await service.refresh_metrics(session)
    return report


async def reconcile(settings: Settings) -> service.ReconcileReport:
    async with db.transaction() as session:
        return await service.reconcile(session, settings)


@task("ledger.anchoring.tick", max_retries=0, autoretry_for=())
def tick_task() -> dict[str, Any]:
    """Beat's pipeline pass; a failed pass is simply the next tick's work."""
    report = run_async(tick(get_settings()))
    return {"closed": report.closed, "sent": report.sent, "final": report.final}


@task("ledger.anchoring.build_records")
def build_records_task() -> int:
    async def run() -> int:
        async with db.transaction() as session:
            return len((await service.build_records(session, get_settings())).accepted)

    return run_async(run())


@task("ledger.anchoring.close_batches")
def close_batches_task(force: bool = False) -> list[int]:
    async def run() -> list[int]:
        async with db.transaction() as session:
            return await service.close_batches(session, get_settings(), force=force)

    return run_async(run())


@task("ledger.anchoring.anchor")
def anchor_task() -> int | None:
    async def run() -> int | None:
        async with db.transaction() as session:
            return (await service.anchor_step(session, get_settings())).sent

    return run_async(run())


@task(RECONCILE_TASK)
def reconcile_task() -> dict[str, Any]:
    report = run_async(reconcile(get_settings()))
    return {
        "checked": report.checked,
        "reset": report.reset,
        "conflicts": report.conflicts,
        "contract_missing": report.contract_missing,
        "redeployed": report.redeployed,
    }


@worker_ready.connect
def _reconcile_at_start(sender: Any = None, **_: Any) -> None:
    """Reconcile once when a worker starts (the chain may have been reset while it was down)."""
    app = getattr(sender, "app", None)
    if app is not None:
        app.send_task(RECONCILE_TASK)
        log.info("anchoring_reconcile_scheduled_at_start")
