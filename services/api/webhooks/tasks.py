"""Beat tasks of webhooks: ``webhooks.dispatch`` (every second: one delivery pass, then the queue
gauges) and ``webhooks.prune`` (hourly: delivered messages older than the retention).

Running either twice, or two at once, is harmless: claims are leased with ``SKIP LOCKED`` and an
attempt is recorded only by the dispatcher that holds its lease.
"""

from __future__ import annotations

from datetime import timedelta

from qilian.kit import db
from qilian.kit.tasks import run_async, task
from services.api.webhooks import delivery, repository
from services.api.webhooks.settings import get_webhook_settings


async def dispatch_pass() -> dict[str, int]:
    counts = await delivery.dispatch_once()
    await delivery.refresh_gauges()
    return counts


async def prune_delivered() -> int:
    before = delivery.utcnow() - timedelta(days=get_webhook_settings().retention_days)
    async with db.transaction() as session:
        return await repository.prune(session, before)


@task("webhooks.dispatch")
def dispatch() -> dict[str, int]:
    """Returns how many messages were delivered, rescheduled (``pending``) or dead-lettered."""
    return run_async(dispatch_pass())


@task("webhooks.prune")
def prune() -> int:
    """Returns how many delivered messages were deleted."""
    return run_async(prune_delivered())
