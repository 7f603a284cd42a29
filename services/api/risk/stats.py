"""The regulator's cluster indicators (docs/risk.md, "Cluster indicators"): per cluster of the
debtor core firm, a snapshot of now and monthly series, in one currency.

Snapshot (now): confirmed receivables outstanding, the overdue part and its ratio, concentration
(the largest core firm's share of the cluster's confirmed outstanding), live guarantee cover.

Each month (``from``…``to``, UTC calendar months): financings funded in the month (volume =
the advances, count, distinct suppliers — the SMEs financed — the effective annual rates' p25,
p50, p75, days from the invoice's upload to the cash, green share of the volume), receivables
that fell due in the month and the part of them that went overdue, financings closed in the
month and the defaulted share, guarantee cover attached, registry rollbacks (financings the
chain refused because the invoice was financed elsewhere). Platform-wide each month: duplicate
uploads refused (409 on ``POST /v1/invoices`` and duplicate rows of bulk imports — an upload
names no cluster until it is accepted) and the pool's balance at the month's end.

Ratios are exact decimals rounded to 6 places (half-even) once, at the end. ``core_firm_ids``
narrows every figure to those debtors (a drill-down); the platform-wide figures stay whole.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from qilian.kit.money import Money
from services.api.organizations.models import Cluster
from services.api.risk import ledger

RATIO_PLACES = Decimal("0.000001")


def ratio(part: int | Decimal, whole: int | Decimal) -> str | None:
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN))


def month_start(value: date) -> date:
    return value.replace(day=1)


def next_month(value: date) -> date:
    return date(value.year + value.month // 12, value.month % 12 + 1, 1)


def months(first: date, last: date) -> list[date]:
    out = []
    at = month_start(first)
    while at <= last:
        out.append(at)
        at = next_month(at)
    return out


def _moment(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Scope:
    currency: str
    first: date  # first day of the first month
    last: date  # first day of the last month
    core_firm_ids: list[str] | None = None

    def params(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "start": _moment(self.first),
            "end": _moment(next_month(self.last)),
            "start_day": self.first,
            "end_day": next_month(self.last),
            "firms": self.core_firm_ids or [],
            "scoped": self.core_firm_ids is not None,
        }


# every query below narrows to the scope's debtors with (NOT :scoped OR d.id = ANY(:firms))

SNAPSHOT = """
SELECT d.cluster, d.id AS debtor_id,
       sum(r.open_amount_minor) AS outstanding,
       sum(r.open_amount_minor) FILTER (WHERE r.settlement = 'overdue') AS overdue
FROM platform.receivables r JOIN platform.organizations d ON d.id = r.debtor_id
WHERE r.confirmation = 'confirmed' AND r.holding = 'held'
  AND r.settlement IN ('open', 'partially_paid', 'overdue')
  AND r.currency = :currency AND d.cluster IS NOT NULL AND (NOT :scoped OR d.id = ANY(:firms))
GROUP BY d.cluster, d.id
"""

COVER_NOW = """
SELECT d.cluster, sum(c.covered_minor) AS covered
FROM platform.guarantee_covers c
JOIN platform.financings f ON f.id = c.financing_id
JOIN platform.organizations d ON d.id = f.debtor_id
WHERE f.state IN ('registering', 'awaiting_disbursement', 'funded')
  AND c.currency = :currency AND (NOT :scoped OR d.id = ANY(:firms))
GROUP BY d.cluster
"""

FUNDED = """
WITH funded AS (
  SELECT f.id, d.cluster, date_trunc('month', f.funded_at AT TIME ZONE 'UTC') AS month,
         f.advance_minor, f.supplier_id, f.effective_annual_rate, s.green,
         extract(epoch FROM f.funded_at - (
             SELECT min(i.created_at) FROM platform.financing_request_items it
             JOIN platform.receivables rv ON rv.id = it.receivable_id
             JOIN platform.invoices i ON i.id = rv.invoice_id
             WHERE it.request_id = f.request_id)) / 86400.0 AS days_to_cash
  FROM platform.financings f
  JOIN platform.organizations d ON d.id = f.debtor_id
  JOIN platform.organizations s ON s.id = f.supplier_id
  WHERE f.funded_at >= :start AND f.funded_at < :end AND f.currency = :currency
    AND d.cluster IS NOT NULL AND (NOT :scoped OR d.id = ANY(:firms))
)
SELECT cluster, month, count(*) AS n, sum(advance_minor) AS volume,
       count(DISTINCT supplier_id) AS smes,
       sum(advance_minor) FILTER (WHERE green) AS green_volume,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY effective_annual_rate) AS p25,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY effective_annual_rate) AS p50,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY effective_annual_rate) AS p75,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY days_to_cash) AS days_p50,
       avg(days_to_cash) AS days_mean
FROM funded GROUP BY cluster, month
"""

FELL_DUE = """
SELECT d.cluster, date_trunc('month', r.due_date) AS month,
       sum(r.face_value_minor) AS due,
       sum(r.face_value_minor) FILTER (WHERE EXISTS (
           SELECT 1 FROM platform.receivable_events e
           WHERE e.receivable_id = r.id AND e.type = 'overdue')) AS went_overdue
FROM platform.receivables r JOIN platform.organizations d ON d.id = r.debtor_id
WHERE r.confirmation = 'confirmed' AND r.parent_id IS NULL AND r.currency = :currency
  AND r.due_date >= :start_day AND r.due_date < :end_day
  AND d.cluster IS NOT NULL AND (NOT :scoped OR d.id = ANY(:firms))
GROUP BY d.cluster, month
"""

CLOSED = """
SELECT d.cluster, date_trunc('month', f.closed_at AT TIME ZONE 'UTC') AS month,
       count(*) FILTER (WHERE f.state IN ('repaid', 'defaulted')) AS settled,
       count(*) FILTER (WHERE f.state = 'defaulted') AS defaulted,
       sum(f.advance_minor) FILTER (WHERE f.state IN ('repaid', 'defaulted')) AS settled_volume,
       sum(f.advance_minor) FILTER (WHERE f.state = 'defaulted') AS defaulted_volume,
       count(*) FILTER (WHERE f.state = 'rolled_back') AS rolled_back
FROM platform.financings f JOIN platform.organizations d ON d.id = f.debtor_id
WHERE f.closed_at >= :start AND f.closed_at < :end AND f.currency = :currency
  AND d.cluster IS NOT NULL AND (NOT :scoped OR d.id = ANY(:firms))
GROUP BY d.cluster, month
"""

COVER_ATTACHED = """
SELECT d.cluster, date_trunc('month', c.attached_at AT TIME ZONE 'UTC') AS month,
       sum(c.covered_minor) AS covered, count(*) AS n
FROM platform.guarantee_covers c
JOIN platform.financings f ON f.id = c.financing_id
JOIN platform.organizations d ON d.id = f.debtor_id
WHERE c.attached_at >= :start AND c.attached_at < :end AND c.currency = :currency
  AND (NOT :scoped OR d.id = ANY(:firms))
GROUP BY d.cluster, month
"""

DUPLICATES = """
SELECT date_trunc('month', at AT TIME ZONE 'UTC') AS month, count(*) AS n FROM (
  SELECT occurred_at AS at FROM platform.audit_log
  WHERE action = 'request.refused' AND details->>'path' = '/v1/invoices'
    AND details->>'status' = '409' AND occurred_at >= :start AND occurred_at < :end
  UNION ALL
  SELECT i.created_at AS at FROM platform.invoice_import_rows r
  JOIN platform.invoice_imports i ON i.id = r.import_id
  WHERE r.outcome = 'duplicate' AND i.created_at >= :start AND i.created_at < :end
) attempts GROUP BY month
"""

POOL_AT = """
SELECT coalesce(sum(l.debit_minor - l.credit_minor), 0)
FROM platform.risk_ledger_lines l JOIN platform.risk_ledger_entries e ON e.id = l.entry_id
WHERE l.account_id = :account AND e.posted_at < :until
"""


def _key(value: Any) -> str:
    """A month bucket as ``YYYY-MM``."""
    if isinstance(value, datetime | date):
        return f"{value.year:04d}-{value.month:02d}"
    return str(value)


def _rate(value: Any) -> str | None:
    if value is None:
        return None
    return str(Decimal(str(value)).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN))


def _days(value: Any) -> str | None:
    if value is None:
        return None
    return str(Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN))


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    return list((await session.execute(text(sql), params)).mappings())


async def cluster_indicators(session: AsyncSession, scope: Scope) -> dict[str, Any]:
    params = scope.params()
    currency = scope.currency

    def money(minor: Any) -> dict[str, str]:
        return Money(int(minor or 0), currency).to_json()

    buckets = [_key(m) for m in months(scope.first, scope.last)]
    per_firm: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for row in await _rows(session, SNAPSHOT, params):
        per_firm[row["cluster"]].append(
            (row["debtor_id"], int(row["outstanding"] or 0), int(row["overdue"] or 0))
        )
    cover_now = {
        r["cluster"]: int(r["covered"] or 0) for r in await _rows(session, COVER_NOW, params)
    }
    series: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for row in await _rows(session, FUNDED, params):
        series[row["cluster"]][_key(row["month"])].update(
            financed_volume=money(row["volume"]),
            financed_count=int(row["n"]),
            smes_financed=int(row["smes"]),
            effective_rate_p25=_rate(row["p25"]),
            effective_rate_p50=_rate(row["p50"]),
            effective_rate_p75=_rate(row["p75"]),
            days_upload_to_cash_p50=_days(row["days_p50"]),
            days_upload_to_cash_mean=_days(row["days_mean"]),
            green_share=ratio(int(row["green_volume"] or 0), int(row["volume"] or 0)),
        )
    for row in await _rows(session, FELL_DUE, params):
        series[row["cluster"]][_key(row["month"])].update(
            fell_due=money(row["due"]),
            went_overdue=money(row["went_overdue"]),
            overdue_ratio=ratio(int(row["went_overdue"] or 0), int(row["due"] or 0)),
        )
    for row in await _rows(session, CLOSED, params):
        series[row["cluster"]][_key(row["month"])].update(
            financings_settled=int(row["settled"]),
            financings_defaulted=int(row["defaulted"]),
            default_ratio=ratio(int(row["defaulted"]), int(row["settled"])),
            default_volume_ratio=ratio(
                int(row["defaulted_volume"] or 0), int(row["settled_volume"] or 0)
            ),
            registry_rollbacks=int(row["rolled_back"]),
        )
    for row in await _rows(session, COVER_ATTACHED, params):
        series[row["cluster"]][_key(row["month"])].update(
            guarantee_cover_attached=money(row["covered"]), covers_attached=int(row["n"])
        )
    clusters = []
    for cluster in Cluster:
        firms = per_firm.get(cluster.value, [])
        outstanding = sum(f[1] for f in firms)
        overdue = sum(f[2] for f in firms)
        largest = max(firms, key=lambda f: (f[1], f[0]), default=None)
        monthly = []
        for bucket in buckets:
            figures = series[cluster.value].get(bucket, {})
            monthly.append({"period": bucket, **_empty_month(money), **figures})
        clusters.append(
            {
                "cluster": cluster.value,
                "current": {
                    "confirmed_outstanding": money(outstanding),
                    "overdue_outstanding": money(overdue),
                    "overdue_ratio": ratio(overdue, outstanding),
                    "core_firms": len(firms),
                    "largest_core_firm_id": largest[0] if largest and largest[1] else None,
                    "concentration": ratio(largest[1], outstanding) if largest else None,
                    "guarantee_cover": money(cover_now.get(cluster.value, 0)),
                },
                "months": monthly,
            }
        )
    duplicates = {_key(r["month"]): int(r["n"]) for r in await _rows(session, DUPLICATES, params)}
    pool_account = ledger.pool(currency).id
    platform_months = []
    for start in months(scope.first, scope.last):
        until = _moment(next_month(start))
        balance = (
            await session.execute(text(POOL_AT), {"account": pool_account, "until": until})
        ).scalar_one()
        platform_months.append(
            {
                "period": _key(start),
                "duplicate_uploads_refused": duplicates.get(_key(start), 0),
                "pool_balance_end": money(balance),
            }
        )
    pool_now = await ledger.balance(session, ledger.pool(currency))
    return {
        "currency": currency,
        "from": buckets[0],
        "to": buckets[-1],
        "core_firm_ids": scope.core_firm_ids,
        "generated_at": datetime.now(UTC).isoformat(),
        "clusters": clusters,
        "platform": {"pool_balance": money(pool_now), "months": platform_months},
    }


def _empty_month(money: Any) -> dict[str, Any]:
    zero = money(0)
    return {
        "financed_volume": zero,
        "financed_count": 0,
        "smes_financed": 0,
        "effective_rate_p25": None,
        "effective_rate_p50": None,
        "effective_rate_p75": None,
        "days_upload_to_cash_p50": None,
        "days_upload_to_cash_mean": None,
        "green_share": None,
        "fell_due": zero,
        "went_overdue": zero,
        "overdue_ratio": None,
        "financings_settled": 0,
        "financings_defaulted": 0,
        "default_ratio": None,
        "default_volume_ratio": None,
        "registry_rollbacks": 0,
        "guarantee_cover_attached": zero,
        "covers_attached": 0,
    }


CSV_COLUMNS = [
    "cluster",
    "period",
    "currency",
    "confirmed_outstanding",
    "overdue_outstanding",
    "overdue_ratio",
    "concentration",
    "largest_core_firm_id",
    "guarantee_cover",
    *[k for k in _empty_month(lambda _: None)],
    "duplicate_uploads_refused",
    "pool_balance_end",
]


def to_csv(report: dict[str, Any]) -> str:
    """One row per cluster and month, a ``current`` row per cluster for the snapshot, and a
    ``platform`` row per month; amounts as decimal strings in the report's currency."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()

    def flat(values: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (v["amount"] if isinstance(v, dict) and "amount" in v else v)
            for k, v in values.items()
        }

    currency = report["currency"]
    for cluster in report["clusters"]:
        writer.writerow(
            {"cluster": cluster["cluster"], "period": "current", "currency": currency}
            | flat(cluster["current"])
        )
        for month in cluster["months"]:
            writer.writerow({"cluster": cluster["cluster"], "currency": currency} | flat(month))
    for month in report["platform"]["months"]:
        writer.writerow({"cluster": "platform", "currency": currency} | flat(month))
    return out.getvalue()
