"""Background work of the marketplace: the ledger's registry answers (an outbox consumer) and
the timers run by beat — auctions close, offers expire, unfunded acceptances lapse, funded
financings are repaid or default. Each item is handled in its own transaction under its row
lock and re-checked there, so a second run, or two at once, changes each item once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit import db
from qilian.kit.outbox import Envelope
from qilian.kit.tasks import outbox_consumer, run_async, task
from services.api.financing import service
from services.api.financing.settings import get_financing_settings

log = structlog.get_logger(__name__)


@outbox_consumer("financing.registry_result")
async def apply_registry_result(session: AsyncSession, envelope: Envelope) -> None:
    await service.apply_registry_result(session, envelope.payload)


async def _each(
    query: Any, limit: int, handle: Callable[[AsyncSession, str], Awaitable[Any]]
) -> int:
    """Run ``handle`` on each due id, one transaction each; returns how many changed."""
    async with db.transaction() as session:
        due = list((await session.execute(query.limit(limit))).scalars())
    changed = 0
    for item in due:
        async with db.transaction() as session:
            if await handle(session, item):
                changed += 1
    return changed


async def run_timers(at: datetime | None = None, on: date | None = None) -> service.TickReport:
    """One pass of every timer (``at``/``on`` default to now/today; tests pass their own)."""
    at = at or datetime.now(UTC)
    on = on or at.date()
    settings = get_financing_settings()
    limit = settings.tick_limit
    report = service.TickReport()
    report.auctions_closed = await _each(service.due_auctions(at), limit, service.close_auction)
    report.offers_expired = await _each(service.due_offers(at), limit, service.expire_offer)
    report.lapsed = await _each(service.due_lapses(at), limit, service.lapse)

    async def settle(session: AsyncSession, financing_id: str) -> bool:
        outcome = await service.settle(session, financing_id, on)
        if outcome == "repaid":
            report.repaid += 1
        elif outcome == "defaulted":
            report.defaulted += 1
        return outcome is not None

    await _each(service.settling(on, settings.default_grace_days), limit, settle)
    return report


@task("financing.tick")
def tick() -> dict[str, int]:
    """Beat, every second: what changed, by timer."""
    report = run_async(run_timers())
    changed = {k: v for k, v in vars(report).items() if v}
    if changed:
        log.info("financing_timers", **changed)
    return vars(report)
