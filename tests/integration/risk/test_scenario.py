"""The demo scenario (``qilian seed``): played through the domain services on the session
database and chain, it leaves every cluster with activity, funded financings, a covered default
whose claims the pool paid, a ledger that verifies, and early warnings; a second run is skipped."""

from datetime import date, timedelta
from typing import Any

import httpx

from qilian.cli import scenario
from qilian.cli.seed import play_demo_scenario, seed_demo
from qilian.kit import db
from qilian.kit.settings import get_settings
from services.api.financing import tasks as financing_tasks
from services.api.risk import ledger
from tests.integration.receivables.lifecycle_helpers import call
from tests.integration.risk.helpers import World


async def test_the_demo_scenario_fills_the_dashboard_once(http, world, tmp_path):
    async with db.transaction() as session:
        organizations = await seed_demo(session, tmp_path / "demo-credentials.json")
    report = await scenario.play(get_settings(), organizations)
    assert not report.skipped
    assert report.invoices >= 50
    assert report.confirmed >= 40
    assert report.overdue >= 1
    assert report.duplicates_refused == 3
    assert report.funded >= 3, report.notes
    assert report.defaulted >= 1, report.notes
    assert report.alerts >= 3

    cores = [o["id"] for o in organizations if o["role"] == "core_firm"]
    params = [("core_firm_id", c) for c in cores] + [("currency", "CNY")]
    response = await http.get(
        "/v1/stats/clusters",
        params=params,
        headers={"Authorization": (await _bearer(http, world))},
    )
    assert response.status_code == 200, response.text
    stats = response.json()
    for cluster in stats["clusters"]:
        assert cluster["current"]["confirmed_outstanding"]["amount"] != "0.00", cluster["cluster"]
    chemicals = next(c for c in stats["clusters"] if c["cluster"] == "chemicals")
    assert chemicals["current"]["overdue_ratio"] not in (None, "0.000000")

    rules = set()
    cursor = None
    while True:
        page = (
            await call(
                http,
                world.regulator,
                "GET",
                "/v1/alerts?limit=200" + (f"&cursor={cursor}" if cursor else ""),
            )
        ).json()
        rules |= {
            a["rule"]
            for a in page["items"]
            if a["subject"].split(":")[1] in _subjects(organizations)
        }
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert {"overdue_ratio", "payment_terms", "duplicate_attempts"} <= rules

    claims = (await call(http, world.regulator, "GET", "/v1/risk-claims?state=paid")).json()
    assert claims["items"]
    async with db.transaction() as session:
        assert (await ledger.verify(session)).ok
    again = await play_demo_scenario(get_settings(), organizations)
    assert again == "demo scenario played already"
    # leave no funded financing due before the other tests' (they play their own defaults
    # forward in time and count what the timers settle)
    await financing_tasks.run_timers(on=date.today() + timedelta(days=400))


def _subjects(organizations: list[dict[str, Any]]) -> set[str]:
    return {o["id"] for o in organizations} | {"chemicals", "alloy", "pv", "lithium", "bio"}


async def _bearer(http: httpx.AsyncClient, world: World) -> str:
    from tests.integration.invoices.intake_helpers import token

    return (await token(http, world.regulator))["Authorization"]
