"""The regulator's pages (read by the operator too): the cluster indicators with their charts, and
the early warnings.

The dashboard calls :func:`services.api.risk.stats.cluster_indicators`, as
``GET /v1/stats/clusters`` does, with the same parameters (``currency``, ``from``, ``to`` as
``YYYY-MM``, ``core_firm_id`` repeatable) and links to that endpoint's CSV for the same choice
(the session cookie authenticates a ``GET /v1`` request). The alerts page lists
:func:`services.api.risk.alerts.list_query`, newest first. Figures are only formatted here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import tuple_
from sqlmodel import col

from qilian.kit.errors import InvalidInput
from qilian.kit.money import MINOR_UNITS
from services.api.auth.dependencies import Session
from services.api.auth.models import Principal
from services.api.organizations.models import Cluster, Role
from services.api.risk import alerts, service, stats
from services.api.risk.models import Alert
from services.api.risk.router import MAX_MONTHS
from services.api.web import i18n
from services.api.web import repository as web_repository
from services.api.web.i18n import N_
from services.api.web.rendering import PageRoute, render
from services.api.web.session import page_roles

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)

SupervisorPage = Annotated[Principal, Depends(page_roles(Role.regulator, Role.operator))]

PAGE_SIZE: Final = 50
DEFAULT_MONTHS: Final = 6

CLUSTER_NAMES: Final = {
    "pv": N_("photovoltaic manufacturing"),
    "lithium": N_("lithium energy storage"),
    "alloy": N_("alloy materials"),
    "chemicals": N_("specialty chemical new materials"),
    "bio": N_("biomedicine and plateau bio-resources"),
}
RULE_NAMES: Final = {
    "overdue_ratio": N_("Overdue ratio of a cluster"),
    "payables_growth": N_("Growth of a core firm's payables"),
    "payment_terms": N_("Payment terms beyond policy"),
    "duplicate_attempts": N_("Repeated duplicate uploads"),
    "pool_cover": N_("Risk compensation pool cover"),
}
SEVERITIES: Final = {"high": N_("high"), "medium": N_("medium"), "low": N_("low")}
FACT_NAMES: Final = {
    "cluster": N_("Cluster"),
    "currency": N_("Currency"),
    "overdue": N_("Overdue"),
    "confirmed_outstanding": N_("Confirmed outstanding"),
    "overdue_ratio": N_("Overdue ratio"),
    "threshold": N_("Threshold"),
    "core_firms": N_("Core firms"),
    "core_firm_id": N_("Core firm"),
    "confirmed_recent": N_("Confirmed in the last window"),
    "confirmed_previous": N_("Confirmed in the window before"),
    "growth": N_("Growth"),
    "window_days": N_("Window (days)"),
    "receivables": N_("Receivables"),
    "longest_days": N_("Longest term (days)"),
    "policy_days": N_("Policy (days)"),
    "examples": N_("Examples"),
    "organization_id": N_("Organisation"),
    "attempts": N_("Attempts"),
    "last_attempt_at": N_("Last attempt"),
    "balance": N_("Pool balance"),
    "exposure": N_("Exposure"),
    "required": N_("Required balance"),
    "cover_ratio": N_("Cover ratio"),
    "queued_claims": N_("Queued claims"),
    "queued_amount": N_("Queued amount"),
}
RATIO_FACTS: Final = frozenset({"overdue_ratio", "growth", "cover_ratio"})
ORG_FACTS: Final = frozenset({"core_firm_id", "organization_id"})


def _bad(name: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{name}: {message}", errors=[{"field": name, "in": "query", "message": message}]
    )


def _month(value: str | None, name: str, default: date) -> date:
    if not value:
        return default
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise _bad(name, "a month as YYYY-MM") from None


def scope_of(request: Request) -> stats.Scope:
    """The query's choice, read as ``GET /v1/stats/clusters`` reads it (default: the last six
    months in CNY, every core firm)."""
    params = request.query_params
    currency = params.get("currency") or "CNY"
    if currency not in MINOR_UNITS:
        raise _bad("currency", f"unsupported currency {currency!r}")
    last = _month(params.get("to"), "to", service.today().replace(day=1))
    first_default = stats.months(date(last.year - 1, last.month, 1), last)[-DEFAULT_MONTHS]
    first = _month(params.get("from"), "from", first_default)
    if first > last:
        raise _bad("from", "from is after to")
    if len(stats.months(first, last)) > MAX_MONTHS:
        raise _bad("from", f"at most {MAX_MONTHS} months")
    firms = [f for f in params.getlist("core_firm_id") if f] or None
    return stats.Scope(currency, first, last, firms)


def percent(language: str) -> Callable[[str | Decimal | None], str]:
    """A ratio (``"0.100000"``) as a percentage of the language, two decimals; — when none."""
    locale = i18n.Formats(language).locale

    def show(value: str | Decimal | None) -> str:
        if value is None or value == "":
            return "—"
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        return format_percent(number, format="#,##0.00%", locale=locale)

    return show


def days(language: str) -> Callable[[str | None], str]:
    locale = i18n.Formats(language).locale

    def show(value: str | None) -> str:
        if value is None:
            return "—"
        return format_decimal(Decimal(value), format="#,##0.0", locale=locale)

    return show


def _amount(money: dict[str, str]) -> float:
    return float(Decimal(money["amount"]))


def chart_data(
    report: dict[str, Any], names: dict[str, str], labels: list[str], words: dict[str, str]
) -> dict[str, Any]:
    """What the charts draw (``static/regulator.js`` reads it from the page): financed volume
    and overdue ratio (of the receivables that fell due) per cluster and month."""
    volume, overdue = [], []
    for cluster in report["clusters"]:
        months = cluster["months"]
        name = names[cluster["cluster"]]
        volume.append({"label": name, "data": [_amount(m["financed_volume"]) for m in months]})
        overdue.append(
            {
                "label": name,
                "data": [
                    None if m["overdue_ratio"] is None else float(Decimal(m["overdue_ratio"]))
                    for m in months
                ],
            }
        )
    return {
        "labels": labels,
        "currency": report["currency"],
        "volume": volume,
        "overdue": overdue,
        "words": words,
    }


def _query(scope: stats.Scope, **extra: str) -> str:
    pairs: list[tuple[str, str]] = [
        ("currency", scope.currency),
        ("from", f"{scope.first:%Y-%m}"),
        ("to", f"{scope.last:%Y-%m}"),
    ]
    pairs += [("core_firm_id", f) for f in scope.core_firm_ids or []]
    pairs += list(extra.items())
    return urlencode(pairs)


@router.get("/regulator", response_class=HTMLResponse)
async def dashboard(request: Request, principal: SupervisorPage, session: Session) -> Any:
    """The cluster indicators: now, by month, platform-wide; two charts; the CSV."""
    scope = scope_of(request)
    report = await stats.cluster_indicators(session, scope)
    language = i18n.choose(request)
    names = {key: i18n.gettext(language, text) for key, text in CLUSTER_NAMES.items()}
    formats = i18n.Formats(language)
    periods = stats.months(scope.first, scope.last)
    labels = [formats.month(m) for m in periods]
    words = {
        "volume": i18n.gettext(language, "Financed volume (%(currency)s)", currency=scope.currency),
        "overdue": i18n.gettext(language, "Overdue ratio (%)"),
    }
    largest = [c["current"]["largest_core_firm_id"] for c in report["clusters"]]
    return render(
        request,
        "regulator.html",
        report=report,
        clusters=[c.value for c in Cluster],
        cluster_names=names,
        month_labels={f"{m:%Y-%m}": label for m, label in zip(periods, labels, strict=True)},
        firm_names=await web_repository.names(session, largest),
        charts=chart_data(report, names, labels, words),
        percent=percent(language),
        days=days(language),
        selected={
            "currency": scope.currency,
            "from": f"{scope.first:%Y-%m}",
            "to": f"{scope.last:%Y-%m}",
            "core_firm_ids": scope.core_firm_ids or [],
        },
        currencies=sorted(MINOR_UNITS),
        csv_url=f"/v1/stats/clusters?{_query(scope, format='csv')}",
    )


def encode_cursor(at: datetime, alert_id: str) -> str:
    raw = json.dumps([at.isoformat(), alert_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, alert_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad("cursor", "invalid cursor")
    return moment, str(alert_id)


def _fact(key: str, value: Any, pct: Callable[..., str], formats: i18n.Formats, orgs: Any) -> Any:
    """One fact as the page shows it (money, a percentage, a time, a name, a list)."""
    if isinstance(value, dict) and "amount" in value and "currency" in value:
        return formats.money(value)
    if key in RATIO_FACTS:
        return pct(value)
    if key in ORG_FACTS and isinstance(value, str):
        return str(orgs.get(value, value))
    if key == "last_attempt_at" and isinstance(value, str):
        return formats.datetime(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, int):
        return formats.number(value)
    return str(value)


@router.get("/regulator/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request, principal: SupervisorPage, session: Session) -> Any:
    """The early warnings, newest first, 50 a page, each with the facts that raised it."""
    params = request.query_params
    rule = params.get("rule") or None
    if rule is not None and rule not in alerts.RULES:
        raise _bad("rule", f"unknown rule {rule!r}")
    query = alerts.list_query(rule)
    cursor = params.get("cursor") or None
    if cursor is not None:
        at, after = decode_cursor(cursor)
        query = query.where(tuple_(col(Alert.raised_at), col(Alert.id)) < tuple_(at, after))
    query = query.order_by(col(Alert.raised_at).desc(), col(Alert.id).desc()).limit(PAGE_SIZE + 1)
    rows: list[Alert] = list((await session.execute(query)).scalars())
    next_cursor = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        next_cursor = encode_cursor(rows[-1].raised_at, rows[-1].id)
    language = i18n.choose(request)
    formats = i18n.Formats(language)
    pct = percent(language)
    subjects = [a.subject.split(":")[1] for a in rows if a.subject.count(":") >= 1]
    org_ids = [
        str(v) for a in rows for k, v in a.facts.items() if k in ORG_FACTS and isinstance(v, str)
    ]
    orgs = await web_repository.names(session, [*subjects, *org_ids])
    names = {key: i18n.gettext(language, text) for key, text in CLUSTER_NAMES.items()}
    shown = []
    for a in rows:
        kind, _, rest = a.subject.partition(":")
        target, _, currency = rest.partition(":")
        if kind == "cluster":
            subject = names.get(target, target)
        elif kind == "pool":
            subject = i18n.gettext(language, "Risk compensation pool (%(c)s)", c=target)
        else:
            subject = orgs.get(target, target)
        if currency and kind != "pool":
            subject = f"{subject} ({currency})"
        facts = [
            (
                i18n.gettext(language, FACT_NAMES[k]) if k in FACT_NAMES else k,
                names.get(v, v) if k == "cluster" else _fact(k, v, pct, formats, orgs),
            )
            for k, v in a.facts.items()
        ]
        shown.append(
            {
                "id": a.id,
                "rule": a.rule,
                "rule_name": i18n.gettext(language, RULE_NAMES.get(a.rule, a.rule)),
                "severity": a.severity,
                "severity_name": i18n.gettext(language, SEVERITIES.get(a.severity, a.severity)),
                "subject": subject,
                "subject_key": a.subject,
                "period": a.period,
                "raised_at": a.raised_at,
                "facts": facts,
            }
        )
    rules = {key: i18n.gettext(language, text) for key, text in RULE_NAMES.items()}
    next_params = {"rule": rule} if rule else {}
    return render(
        request,
        "regulator_alerts.html",
        alerts=shown,
        rules=rules,
        selected_rule=rule or "",
        next_cursor=next_cursor,
        next_params=next_params,
    )
