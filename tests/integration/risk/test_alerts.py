"""Each early-warning rule: a case that trips it and one that does not (the boundary where
there is one), each narrowed to the test's own subjects; an alert is raised once per (rule,
subject, period) however often beat evaluates, reaches the regulator as ``alert.raised`` and is
listed by ``GET /v1/alerts`` with its facts."""

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from qilian.kit import db
from qilian.kit.settings import get_settings
from services.api.auth.models import Principal, PrincipalKind
from services.api.organizations.models import Cluster, Role
from services.api.receivables.tasks import sweep_overdue
from services.api.risk import alerts, tasks
from services.api.risk.settings import RiskSettings
from services.api.webhooks import service as webhooks
from services.api.webhooks.settings import WebhookSettings
from tests.integration.financing.market import DUE, ISSUED
from tests.integration.invoices.intake_helpers import Party, invoice_number, token, ubl
from tests.integration.receivables.lifecycle_helpers import call, upload
from tests.integration.risk.helpers import World, funded, party, programme, receivable


async def findings(
    rule: str, scope: list[str], at: datetime | None = None, **settings: Any
) -> list[alerts.Finding]:
    config = RiskSettings(**settings)
    async with db.transaction() as session:
        return await alerts.evaluate(
            session, config, at or datetime.now(UTC), scope=scope, rules=[rule]
        )


# ---------------------------------------------------------------- overdue ratio


async def _overdue_tenth(http: httpx.AsyncClient, world: World) -> str:
    """The alloy core firm owes 9 000.00 due later and 1 000.00 overdue: a ratio of 0.1."""
    core = world.alloy_core
    soon = (date.today() + timedelta(days=20)).isoformat()
    await receivable(http, world, "9000.00", core=core)
    await receivable(http, world, "1000.00", core=core, due=soon)
    await sweep_overdue(date.fromisoformat(soon) + timedelta(days=1), grace_days=0)
    return core.org.id


async def test_overdue_ratio_above_the_threshold_warns(http, world):
    core = await _overdue_tenth(http, world)
    found = await findings(
        "overdue_ratio",
        [core],
        overdue_ratio_threshold="0.0999",
        overdue_ratio_min_outstanding_minor=0,
    )
    assert [(f.rule, f.subject) for f in found] == [("overdue_ratio", "cluster:alloy:EUR")]
    assert found[0].facts == {
        "cluster": "alloy",
        "overdue": {"amount": "1000.00", "currency": "EUR"},
        "confirmed_outstanding": {"amount": "10000.00", "currency": "EUR"},
        "overdue_ratio": "0.100000",
        "threshold": "0.0999",
        "core_firms": 1,
    }


async def test_overdue_ratio_at_the_threshold_or_below_the_minimum_does_not_warn(http, world):
    core = await _overdue_tenth(http, world)
    at_threshold = await findings(
        "overdue_ratio",
        [core],
        overdue_ratio_threshold="0.10",
        overdue_ratio_min_outstanding_minor=0,
    )
    assert at_threshold == []
    too_small = await findings(
        "overdue_ratio",
        [core],
        overdue_ratio_threshold="0.05",
        overdue_ratio_min_outstanding_minor=1_000_001,
    )
    assert too_small == []


# ---------------------------------------------------------------- payables growth


async def _confirmed_at(receivable_ids: list[str]) -> list[datetime]:
    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT at FROM platform.receivable_events WHERE type = 'confirmed' "
                "AND receivable_id = ANY(:ids)"
            ),
            {"ids": receivable_ids},
        )
        return [r.at for r in rows]


async def _growth(
    http: httpx.AsyncClient, world: World, previous: list[str], recent: list[str]
) -> tuple[str, datetime, float]:
    """Confirmations in two batches; the windows are placed around them: the first batch in
    the previous window, the second in the recent one."""
    core = await party(Role.core_firm, cluster=Cluster.lithium)
    first = [await receivable(http, world, amount, core=core) for amount in previous]
    await asyncio.sleep(0.5)
    second = [await receivable(http, world, amount, core=core) for amount in recent]
    a, b = await _confirmed_at(first), await _confirmed_at(second)
    middle = max(a) + (min(b) - max(a)) / 2
    window = max(max(b) - middle, middle - min(a)) + timedelta(seconds=1)
    return core.org.id, middle + window, window / timedelta(days=1)


async def test_payables_growing_faster_than_the_threshold_warn(http, world):
    core, at, days = await _growth(http, world, ["1000.00"], ["1500.00", "1500.01"])
    found = await findings(
        "payables_growth",
        [core],
        at,
        payables_growth_threshold="1.0",
        payables_growth_window_days=days,
        payables_growth_min_minor=0,
    )
    assert [f.subject for f in found] == [f"core_firm:{core}:EUR"]
    assert found[0].facts["confirmed_recent"] == {"amount": "3000.01", "currency": "EUR"}
    assert found[0].facts["confirmed_previous"] == {"amount": "1000.00", "currency": "EUR"}
    assert found[0].facts["growth"] == "2.000010"


async def test_payables_growing_at_the_threshold_do_not_warn(http, world):
    core, at, days = await _growth(http, world, ["1000.00"], ["2000.00"])
    found = await findings(
        "payables_growth",
        [core],
        at,
        payables_growth_threshold="1.0",
        payables_growth_window_days=days,
        payables_growth_min_minor=0,
    )
    assert found == []


# ---------------------------------------------------------------- payment terms


async def test_payment_terms_beyond_policy_warn_and_within_do_not(http, world):
    issued = date.fromisoformat(ISSUED)
    long_core = await party(Role.core_firm, cluster=Cluster.chemicals)
    fair_core = await party(Role.core_firm, cluster=Cluster.chemicals)
    long_rid = await receivable(
        http, world, "800.00", core=long_core, due=(issued + timedelta(days=61)).isoformat()
    )
    await receivable(
        http, world, "800.00", core=fair_core, due=(issued + timedelta(days=60)).isoformat()
    )
    found = await findings(
        "payment_terms", [long_core.org.id, fair_core.org.id], payment_terms_policy_days=60
    )
    assert [f.subject for f in found] == [f"core_firm:{long_core.org.id}"]
    assert found[0].facts == {
        "core_firm_id": long_core.org.id,
        "receivables": 1,
        "longest_days": 61,
        "policy_days": 60,
        "examples": [long_rid],
    }
    # an unconfirmed receivable with long terms does not count
    await upload(
        http, world.supplier, fair_core, issue=ISSUED, due=(issued + timedelta(days=90)).isoformat()
    )
    assert await findings("payment_terms", [fair_core.org.id], payment_terms_policy_days=60) == []


# ---------------------------------------------------------------- duplicate attempts


async def _duplicates(http: httpx.AsyncClient, world: World, supplier: Party, times: int) -> None:
    data = ubl(supplier, world.core, number=invoice_number(), issue=ISSUED, due=DUE)
    statuses = []
    for _ in range(times):
        response = await http.post(
            "/v1/invoices", files={"file": ("d.xml", data)}, headers=await token(http, supplier)
        )
        statuses.append(response.status_code)
    assert statuses == [201] + [409] * (times - 1)


async def test_repeated_duplicate_attempts_warn_below_the_threshold_they_do_not(http, world):
    noisy = await party(Role.supplier)
    quiet = await party(Role.supplier)
    await _duplicates(http, world, noisy, 4)  # three refused
    await _duplicates(http, world, quiet, 3)  # two refused
    found = await findings(
        "duplicate_attempts", [noisy.org.id, quiet.org.id], duplicates_threshold=3
    )
    assert [f.subject for f in found] == [f"org:{noisy.org.id}"]
    assert found[0].facts["attempts"] == 3
    assert found[0].facts["threshold"] == 3


# ---------------------------------------------------------------- the pool against its cover


async def test_a_pool_below_its_cover_warns_until_topped_up(http, world):
    shares = [{"party": "guarantor", "share": "0.7"}, {"party": "pool", "share": "0.3"}]
    covering = await programme(http, world, currency="JPY", loss_shares=shares)
    await funded(http, world, covering["id"], "1000000", "JPY", advance="0.90")
    # exposure 0.3 × 900 000 = 270 000 yen; 20 % of it is 54 000
    found = await findings("pool_cover", ["JPY"])
    assert [f.subject for f in found] == ["pool:JPY"]
    assert found[0].facts["exposure"] == {"amount": "270000", "currency": "JPY"}
    assert found[0].facts["required"] == {"amount": "54000", "currency": "JPY"}
    assert found[0].facts["balance"] == {"amount": "0", "currency": "JPY"}
    short = await call(
        http,
        world.operator,
        "POST",
        "/v1/risk-pool/top-ups",
        {"amount": {"amount": "53999", "currency": "JPY"}, "reference": "not enough"},
    )
    assert short.status_code == 201
    assert [f.subject for f in await findings("pool_cover", ["JPY"])] == ["pool:JPY"]
    enough = await call(
        http,
        world.operator,
        "POST",
        "/v1/risk-pool/top-ups",
        {"amount": {"amount": "1", "currency": "JPY"}, "reference": "enough"},
    )
    assert enough.status_code == 201
    assert await findings("pool_cover", ["JPY"]) == []


# ---------------------------------------------------------------- raised once, delivered


async def test_an_alert_is_raised_once_per_rule_subject_and_period_and_sent_to_regulators(
    http, world
):
    platform = get_settings()
    regulator = Principal(
        PrincipalKind.client, world.regulator.org.client_id, world.regulator.org.id, Role.regulator
    )
    async with db.transaction() as session:  # as the operator would register it for them
        await webhooks.create_endpoint(
            session,
            regulator,
            url="https://regulator.example/alerts",
            event_types=["alert.*"],
            description=None,
            settings=WebhookSettings(),
            env=platform.env,
            secret_key=platform.secret_key,
        )
    noisy = await party(Role.supplier)
    await _duplicates(http, world, noisy, 3)
    config = RiskSettings(duplicates_threshold=2)
    first = await tasks.run_risk(settings=config)
    second = await tasks.run_risk(settings=config)
    assert first.alerts_raised >= 1
    subject = f"org:{noisy.org.id}"
    async with db.transaction() as session:
        rows = (
            await session.execute(
                text("SELECT id, period FROM platform.risk_alerts WHERE subject = :s"),
                {"s": subject},
            )
        ).all()
        assert len(rows) == 1
        messages = (
            await session.execute(
                text(
                    "SELECT payload FROM platform.webhook_messages WHERE organization_id = :o "
                    "AND event_type = 'alert.raised' AND event_id = :e"
                ),
                {"o": world.regulator.org.id, "e": rows[0].id},
            )
        ).all()
    assert len(messages) == 1
    assert subject in messages[0].payload
    assert second.alerts_raised <= first.alerts_raised
    listed = []
    cursor = None
    while True:
        query = "/v1/alerts?rule=duplicate_attempts&limit=200" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = (await call(http, world.regulator, "GET", query)).json()
        listed += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    mine = [a for a in listed if a["subject"] == subject]
    assert len(mine) == 1
    assert mine[0]["facts"]["attempts"] == 2
    assert mine[0]["period"] == rows[0].period
    assert (await call(http, world.supplier, "GET", "/v1/alerts")).status_code == 403
