"""Beat task: mark receivables overdue once their due date plus the configured grace has passed
(``QILIAN_RECEIVABLES_OVERDUE_GRACE_DAYS``). Idempotent: each receivable is re-checked under its
row lock, so a second run, or two at once, marks each one once."""

from __future__ import annotations

from datetime import UTC, date, datetime

from qilian.kit import db
from qilian.kit.tasks import run_async, task
from services.api.receivables import lifecycle
from services.api.receivables.settings import get_receivable_settings

BATCH = 500


async def sweep_overdue(today: date | None = None, grace_days: int | None = None) -> int:
    """Mark every receivable due before ``today - grace``; one transaction per batch."""
    today = today or datetime.now(UTC).date()
    grace = get_receivable_settings().overdue_grace_days if grace_days is None else grace_days
    total = 0
    while True:
        async with db.transaction() as session:
            marked = await lifecycle.mark_overdue(session, today, grace, BATCH)
        total += len(marked)
        if len(marked) < BATCH:
            return total


@task("receivables.mark_overdue")
def mark_overdue() -> int:
    """Returns how many receivables were marked overdue."""
    return run_async(sweep_overdue())
