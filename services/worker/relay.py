"""The outbox relay: claim due outbox rows, publish each to its consumer's task, lease them.

Safe to run many at once (``FOR UPDATE SKIP LOCKED``) and safe to kill at any point: a row whose
consumer has not acknowledged it before its lease ends is published again; consumers are idempotent.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from celery import current_app

from qilian.kit import db, outbox
from qilian.kit.metrics import OUTBOX_PUBLISHED
from qilian.kit.settings import get_settings
from qilian.kit.tasks import run_async, task

log = structlog.get_logger(__name__)


async def relay_once() -> int:
    settings = get_settings()
    async with db.transaction() as session:
        envelopes = await outbox.claim(
            session,
            limit=settings.outbox_batch_size,
            lease=timedelta(seconds=settings.outbox_redelivery_seconds),
            max_attempts=settings.outbox_max_attempts,
        )
    # Claimed and committed: publishing after the commit means a crash here only delays delivery
    # until the lease ends; it never loses an event.
    by_topic: dict[str, list[outbox.Envelope]] = {}
    for envelope in envelopes:
        by_topic.setdefault(envelope.topic, []).append(envelope)
    for topic, batch in by_topic.items():
        # one message per topic and claim: fewer broker round trips, same per-event guarantees
        current_app.send_task(outbox.CONSUMERS[topic], args=[[e.to_json() for e in batch]])
        OUTBOX_PUBLISHED.labels(topic).inc(len(batch))
    if envelopes:
        log.info("outbox_relayed", count=len(envelopes), topics=sorted(by_topic))
    return len(envelopes)


@task("outbox.relay", max_retries=0, autoretry_for=())
def relay() -> int:
    """Relay until nothing is due (bounded so one run never hogs the worker)."""
    total = 0
    for _ in range(50):
        sent = run_async(relay_once())
        total += sent
        if sent < get_settings().outbox_batch_size:
            break
    return total


async def _prune() -> int:
    days = get_settings().outbox_retention_days
    async with db.transaction() as session:
        return await outbox.prune(session, timedelta(days=days))


@task("outbox.prune", max_retries=0, autoretry_for=())
def prune() -> int:
    """Delete outbox rows delivered longer ago than the retention (hourly, by beat)."""
    removed = run_async(_prune())
    if removed:
        log.info("outbox_pruned", removed=removed)
    return removed
