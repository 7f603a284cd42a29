"""Early warnings for the regulator (docs/risk.md, "Early warnings").

Each rule reads the platform's data and returns :class:`Finding`s — a subject (a cluster, a core
firm, an organisation, the pool of a currency) with the facts that tripped it. Rules and their
thresholds are settings (:class:`~services.api.risk.settings.RiskSettings`). A finding becomes an
alert at most once per (rule, subject, period): the period is the calendar month (UTC) and a
UNIQUE constraint makes the second insert a no-op, so beat may evaluate every minute and a
regulator hears once, by the webhook ``alert.raised`` sent to every regulator organisation.

| rule | subject | trips when |
|---|---|---|
| ``overdue_ratio`` | ``cluster:<cluster>:<currency>`` | overdue open / confirmed outstanding > threshold |
| ``payables_growth`` | ``core_firm:<id>:<currency>`` | confirmed in the last window / the one before − 1 > threshold |
| ``payment_terms`` | ``core_firm:<id>`` | receivables confirmed in the window due more than the policy's days after issue |
| ``duplicate_attempts`` | ``org:<id>`` | duplicate uploads refused in the window ≥ threshold |
| ``pool_cover`` | ``pool:<currency>`` | pool balance < cover ratio × the pool's exposure, or claims queued |
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from qilian.kit import ids
from qilian.kit.money import Money
from services.api.organizations.models import Organization, Role
from services.api.risk import service, stats
from services.api.risk.models import Alert, GuaranteeCover, RiskAccount
from services.api.risk.settings import RiskSettings
from services.api.webhooks import service as webhooks

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Finding:
    rule: str
    subject: str
    period: str
    severity: str
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


def period_of(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"


def _scoped(column: str, scope: Collection[str] | None) -> tuple[str, dict[str, Any]]:
    if scope is None:
        return "TRUE", {}
    return f"{column} = ANY(:scope)", {"scope": list(scope)}


OUTSTANDING = """
SELECT d.cluster, r.currency, count(DISTINCT d.id) AS firms,
       sum(r.open_amount_minor) AS outstanding,
       coalesce(sum(r.open_amount_minor) FILTER (WHERE r.settlement = 'overdue'), 0) AS overdue
FROM platform.receivables r JOIN platform.organizations d ON d.id = r.debtor_id
WHERE r.confirmation = 'confirmed' AND r.holding = 'held'
  AND r.settlement IN ('open', 'partially_paid', 'overdue') AND d.cluster IS NOT NULL
  AND {scope}
GROUP BY d.cluster, r.currency
"""


async def overdue_ratio(
    session: AsyncSession, settings: RiskSettings, at: datetime, scope: Collection[str] | None
) -> list[Finding]:
    where, params = _scoped("d.id", scope)
    found = []
    for row in (await session.execute(text(OUTSTANDING.format(scope=where)), params)).mappings():
        outstanding, overdue = int(row["outstanding"]), int(row["overdue"])
        if outstanding < settings.overdue_ratio_min_outstanding_minor:
            continue
        ratio = Decimal(overdue) / Decimal(outstanding)
        if ratio <= settings.overdue_ratio_threshold:
            continue
        found.append(
            Finding(
                "overdue_ratio",
                f"cluster:{row['cluster']}:{row['currency']}",
                period_of(at),
                "high",
                f"{stats.ratio(overdue, outstanding)} of the {row['cluster']} cluster's confirmed "
                f"receivables in {row['currency']} are overdue "
                f"(threshold {settings.overdue_ratio_threshold})",
                {
                    "cluster": row["cluster"],
                    "overdue": Money(overdue, row["currency"]).to_json(),
                    "confirmed_outstanding": Money(outstanding, row["currency"]).to_json(),
                    "overdue_ratio": stats.ratio(overdue, outstanding),
                    "threshold": str(settings.overdue_ratio_threshold),
                    "core_firms": int(row["firms"]),
                },
            )
        )
    return found


CONFIRMED_BY_WINDOW = """
SELECT r.debtor_id, r.currency,
       coalesce(sum(r.face_value_minor) FILTER (WHERE e.at > :middle), 0) AS recent,
       coalesce(sum(r.face_value_minor) FILTER (WHERE e.at <= :middle), 0) AS previous
FROM platform.receivable_events e JOIN platform.receivables r ON r.id = e.receivable_id
WHERE e.type = 'confirmed' AND e.at > :start AND e.at <= :at AND {scope}
GROUP BY r.debtor_id, r.currency
"""


async def payables_growth(
    session: AsyncSession, settings: RiskSettings, at: datetime, scope: Collection[str] | None
) -> list[Finding]:
    where, params = _scoped("r.debtor_id", scope)
    window = timedelta(days=settings.payables_growth_window_days)
    params |= {"at": at, "middle": at - window, "start": at - 2 * window}
    found = []
    rows = await session.execute(text(CONFIRMED_BY_WINDOW.format(scope=where)), params)
    for row in rows.mappings():
        recent, previous = int(row["recent"]), int(row["previous"])
        if previous <= 0 or recent < settings.payables_growth_min_minor:
            continue  # a firm new to the platform has no growth to measure
        growth = Decimal(recent) / Decimal(previous) - 1
        if growth <= settings.payables_growth_threshold:
            continue
        currency = row["currency"]
        found.append(
            Finding(
                "payables_growth",
                f"core_firm:{row['debtor_id']}:{currency}",
                period_of(at),
                "medium",
                f"confirmed payables grew {stats.ratio(growth, 1)} over the last "
                f"{settings.payables_growth_window_days} days "
                f"(threshold {settings.payables_growth_threshold})",
                {
                    "core_firm_id": row["debtor_id"],
                    "confirmed_recent": Money(recent, currency).to_json(),
                    "confirmed_previous": Money(previous, currency).to_json(),
                    "growth": stats.ratio(growth, 1),
                    "window_days": settings.payables_growth_window_days,
                    "threshold": str(settings.payables_growth_threshold),
                },
            )
        )
    return found


LONG_TERMS = """
SELECT r.debtor_id, count(*) AS n, max(r.due_date - r.issue_date) AS longest,
       (array_agg(r.id ORDER BY r.due_date - r.issue_date DESC, r.id))[1:5] AS examples
FROM platform.receivable_events e JOIN platform.receivables r ON r.id = e.receivable_id
WHERE e.type = 'confirmed' AND e.at > :start AND e.at <= :at AND r.parent_id IS NULL
  AND r.due_date - r.issue_date > :policy AND {scope}
GROUP BY r.debtor_id
"""


async def payment_terms(
    session: AsyncSession, settings: RiskSettings, at: datetime, scope: Collection[str] | None
) -> list[Finding]:
    where, params = _scoped("r.debtor_id", scope)
    params |= {
        "at": at,
        "start": at - timedelta(days=settings.payment_terms_window_days),
        "policy": settings.payment_terms_policy_days,
    }
    found = []
    for row in (await session.execute(text(LONG_TERMS.format(scope=where)), params)).mappings():
        found.append(
            Finding(
                "payment_terms",
                f"core_firm:{row['debtor_id']}",
                period_of(at),
                "medium",
                f"{row['n']} receivable(s) confirmed in the last "
                f"{settings.payment_terms_window_days} days are due up to {row['longest']} days "
                f"after issue (policy: {settings.payment_terms_policy_days})",
                {
                    "core_firm_id": row["debtor_id"],
                    "receivables": int(row["n"]),
                    "longest_days": int(row["longest"]),
                    "policy_days": settings.payment_terms_policy_days,
                    "examples": list(row["examples"]),
                },
            )
        )
    return found


DUPLICATE_ATTEMPTS = """
SELECT org, count(*) AS n, max(at) AS last FROM (
  SELECT organization_id AS org, occurred_at AS at FROM platform.audit_log
  WHERE action = 'request.refused' AND details->>'path' = '/v1/invoices'
    AND details->>'status' = '409' AND occurred_at > :start AND occurred_at <= :at
  UNION ALL
  SELECT i.organization_id AS org, i.created_at AS at FROM platform.invoice_import_rows r
  JOIN platform.invoice_imports i ON i.id = r.import_id
  WHERE r.outcome = 'duplicate' AND i.created_at > :start AND i.created_at <= :at
) attempts WHERE org IS NOT NULL AND {scope}
GROUP BY org HAVING count(*) >= :threshold
"""


async def duplicate_attempts(
    session: AsyncSession, settings: RiskSettings, at: datetime, scope: Collection[str] | None
) -> list[Finding]:
    where, params = _scoped("org", scope)
    params |= {
        "at": at,
        "start": at - timedelta(days=settings.duplicates_window_days),
        "threshold": settings.duplicates_threshold,
    }
    rows = await session.execute(text(DUPLICATE_ATTEMPTS.format(scope=where)), params)
    return [
        Finding(
            "duplicate_attempts",
            f"org:{row['org']}",
            period_of(at),
            "high",
            f"{row['n']} duplicate uploads refused in the last "
            f"{settings.duplicates_window_days} days (threshold {settings.duplicates_threshold})",
            {
                "organization_id": row["org"],
                "attempts": int(row["n"]),
                "last_attempt_at": row["last"].isoformat(),
                "window_days": settings.duplicates_window_days,
                "threshold": settings.duplicates_threshold,
            },
        )
        for row in rows.mappings()
    ]


async def pool_cover(
    session: AsyncSession, settings: RiskSettings, at: datetime, scope: Collection[str] | None
) -> list[Finding]:
    """Every currency with a pool account or a cover; ``scope`` names currencies here."""
    currencies = set(
        (await session.execute(select(col(GuaranteeCover.currency)).distinct())).scalars()
    ) | set(
        (
            await session.execute(
                select(col(RiskAccount.currency)).where(col(RiskAccount.kind) == "pool")
            )
        ).scalars()
    )
    found = []
    for currency in sorted(currencies):
        if scope is not None and currency not in scope:
            continue
        state = await service.pool_state(session, currency)
        required = service.round_minor(
            Fraction(state.exposure_minor) * Fraction(settings.pool_cover_ratio), currency
        )
        if state.balance_minor >= required and state.queued_count == 0:
            continue
        found.append(
            Finding(
                "pool_cover",
                f"pool:{currency}",
                period_of(at),
                "high",
                f"the risk compensation pool holds {Money(state.balance_minor, currency)}, "
                f"below {settings.pool_cover_ratio} of its exposure "
                f"{Money(state.exposure_minor, currency)}"
                + (f"; {state.queued_count} claim(s) queued" if state.queued_count else ""),
                {
                    "currency": currency,
                    "balance": Money(state.balance_minor, currency).to_json(),
                    "exposure": Money(state.exposure_minor, currency).to_json(),
                    "required": Money(required, currency).to_json(),
                    "cover_ratio": str(settings.pool_cover_ratio),
                    "queued_claims": state.queued_count,
                    "queued_amount": Money(state.queued_minor, currency).to_json(),
                },
            )
        )
    return found


RULES = {
    "overdue_ratio": (overdue_ratio, "overdue_ratio_enabled"),
    "payables_growth": (payables_growth, "payables_growth_enabled"),
    "payment_terms": (payment_terms, "payment_terms_enabled"),
    "duplicate_attempts": (duplicate_attempts, "duplicates_enabled"),
    "pool_cover": (pool_cover, "pool_cover_enabled"),
}


async def evaluate(
    session: AsyncSession,
    settings: RiskSettings,
    at: datetime,
    scope: Collection[str] | None = None,
    rules: Collection[str] | None = None,
) -> list[Finding]:
    """Every enabled rule's findings now (``scope`` narrows to those subjects' ids, and to
    those currencies for the pool)."""
    found: list[Finding] = []
    for name, (rule, enabled) in RULES.items():
        if getattr(settings, enabled) and (rules is None or name in rules):
            found += await rule(session, settings, at, scope)
    return found


async def raise_alert(session: AsyncSession, finding: Finding, at: datetime) -> Alert | None:
    """Insert the alert unless (rule, subject, period) has one; a new one is sent to every
    regulator organisation as ``alert.raised``."""
    alert_id = ids.new_id("alr")
    inserted = await session.execute(
        insert(Alert)
        .values(
            id=alert_id,
            rule=finding.rule,
            subject=finding.subject,
            period=finding.period,
            severity=finding.severity,
            summary=finding.summary[:500],
            facts=finding.facts,
            raised_at=at,
        )
        .on_conflict_do_nothing(constraint="uq_risk_alerts_rule_subject_period")
        .returning(col(Alert.id))
    )
    if inserted.scalar_one_or_none() is None:
        return None
    alert = await session.get(Alert, alert_id)
    assert alert is not None
    regulators = await session.execute(
        select(col(Organization.id)).where(col(Organization.role) == Role.regulator.value)
    )
    await webhooks.publish(
        session,
        list(regulators.scalars()),
        "alert.raised",
        {
            "alert_id": alert.id,
            "rule": alert.rule,
            "subject": alert.subject,
            "period": alert.period,
            "severity": alert.severity,
            "summary": alert.summary,
            "facts": alert.facts,
        },
        event_id=alert.id,
    )
    log.warning("alert_raised", alert_id=alert.id, rule=alert.rule, subject=alert.subject)
    return alert


def list_query(rule: str | None) -> Any:
    query = select(Alert)
    if rule is not None:
        query = query.where(col(Alert.rule) == rule)
    return query
