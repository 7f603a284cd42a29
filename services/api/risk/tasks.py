"""Background work of risk sharing, run by beat: queued pool claims are paid when the balance
allows (in order), guarantee fees of covers whose financing was never funded are reversed, and the
early-warning rules are evaluated (each alert raised once per rule, subject and period). Each item
is handled in its own transaction under its row lock and re-checked there: running twice, or two
at once, changes each item once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from qilian.kit import db
from qilian.kit.tasks import run_async, task
from services.api.risk import alerts, service
from services.api.risk.settings import RiskSettings, get_risk_settings

log = structlog.get_logger(__name__)


@dataclass
class RiskReport:
    claims_paid: int = 0
    fees_reversed: int = 0
    alerts_raised: int = 0


async def run_risk(at: datetime | None = None, settings: RiskSettings | None = None) -> RiskReport:
    """One pass (``at`` defaults to now; tests pass their own)."""
    at = at or datetime.now(UTC)
    settings = settings or get_risk_settings()
    report = RiskReport()
    async with db.transaction() as session:
        currencies = list((await session.execute(service.queued_currencies())).scalars())
    for currency in currencies:
        async with db.transaction() as session:
            paid = await service.pay_queued(session, currency, settings.tick_limit)
            report.claims_paid += len(paid)
    async with db.transaction() as session:
        due = list(
            (await session.execute(service.fee_reversals_due().limit(settings.tick_limit)))
            .scalars()
            .all()
        )
    for financing_id in due:
        async with db.transaction() as session:
            if await service.reverse_fee(session, financing_id):
                report.fees_reversed += 1
    async with db.transaction() as session:
        findings = await alerts.evaluate(session, settings, at)
    for finding in findings:
        async with db.transaction() as session:
            if await alerts.raise_alert(session, finding, at):
                report.alerts_raised += 1
    return report


@task("risk.tick")
def tick() -> dict[str, int]:
    """Beat, every minute: what changed."""
    report = run_async(run_risk())
    changed = {k: v for k, v in vars(report).items() if v}
    if changed:
        log.info("risk_tick", **changed)
    return vars(report)
