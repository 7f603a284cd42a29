"""Cluster indicators against a small scenario computed by hand: three core firms of our own
(two in pv, one in alloy), narrowed to them with ``core_firm_id`` so that other tests' data in
the session database does not count; JSON and CSV; platform-wide duplicates counted as a
difference; who may read them."""

import csv
import io
import uuid
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx

from services.api.financing import tasks as financing_tasks
from services.api.organizations.models import Cluster, Role
from services.api.receivables.tasks import sweep_overdue
from tests.integration.financing.market import (
    DUE,
    ISSUED,
    accept,
    offer,
    open_request,
    registry_answers,
)
from tests.integration.invoices.intake_helpers import Party, invoice_number, token, ubl
from tests.integration.receivables.lifecycle_helpers import call
from tests.integration.risk.helpers import funded, party, pay, programme, receivable


def month(day: date | str) -> str:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return f"{day.year:04d}-{day.month:02d}"


def six(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN))


async def stats(
    http: httpx.AsyncClient, who: Party, firms: list[str], **query: str
) -> httpx.Response:
    params: list[tuple[str, str | int | float | bool | None]] = [("core_firm_id", f) for f in firms]
    params += list(query.items())
    response = await http.get("/v1/stats/clusters", params=params, headers=await token(http, who))
    assert response.status_code == 200, response.text
    return response


def cluster(report: dict[str, Any], name: str) -> Any:
    return next(c for c in report["clusters"] if c["cluster"] == name)


async def test_indicators_of_a_hand_computed_scenario(http, world):
    core_a, core_b = world.core, await party(Role.core_firm, cluster=Cluster.pv)
    core_c = world.alloy_core
    firms = [core_a.org.id, core_b.org.id, core_c.org.id]
    covered = await programme(http, world)
    today = date.today()
    soon = (today + timedelta(days=30)).isoformat()

    # A (pv): 10 000.00 financed under the cover by the green supplier (advance 0.9 → 9 000.00)
    r1_financing, _ = await funded(http, world, covered["id"], "10000.00", core=core_a)
    # A: 5 000.00 confirmed, not financed; 2 000.00 uploaded, never confirmed
    await receivable(http, world, "5000.00", core=core_a)
    pending = ubl(world.supplier, core_a, number=invoice_number(), issue=ISSUED, due=DUE)
    uploaded = await http.post(
        "/v1/invoices",
        files={"file": ("p.xml", pending)},
        headers=await token(http, world.supplier),
    )
    assert uploaded.status_code == 201
    # A: 1 000.00 financed, refused by the registry (financed elsewhere): rolled back
    market = world.market(core=core_a)
    r6 = await receivable(http, world, "1000.00", core=core_a)
    request = await open_request(http, market, [r6])
    bid = await offer(http, world.banks[1], request["id"], advance="0.95")
    rolled = (await accept(http, market, bid["id"])).json()
    await registry_answers(rolled["id"], outcome="refused", error="AlreadyFinanced")
    # B (pv): 3 000.00 financed by the other (not green) supplier at 0.8 → 2 400.00, then paid
    r4_financing, r4 = await funded(
        http, world, None, "3000.00", supplier=world.brown_supplier, core=core_b, advance="0.80"
    )
    await pay(http, world, r4, "3000.00", core=core_b)
    await financing_tasks.run_timers()  # r4's financing is repaid
    # C (alloy): 4 000.00 confirmed, due in 30 days, then overdue
    await receivable(http, world, "4000.00", core=core_c, due=soon)
    await sweep_overdue(date.fromisoformat(soon) + timedelta(days=1), grace_days=0)

    # a duplicate upload: platform-wide, counted as a difference
    before = (await stats(http, world.regulator, firms, currency="EUR")).json()
    twice = ubl(world.supplier, core_a, number=invoice_number(), issue=ISSUED, due=DUE)
    for expected in (201, 409):
        response = await http.post(
            "/v1/invoices",
            files={"file": ("d.xml", twice)},
            headers=await token(http, world.supplier),
        )
        assert response.status_code == expected

    last = month(DUE)
    report = (
        await stats(http, world.operator, firms, currency="EUR", to=last, **{"from": month(today)})
    ).json()
    assert report["from"] == month(today)
    assert report["to"] == last

    pv, alloy = cluster(report, "pv"), cluster(report, "alloy")
    # snapshot: A holds 10 000 + 5 000 + 1 000 (the rolled-back one is confirmed and open
    # again); the unconfirmed uploads do not count; B's is paid
    assert pv["current"] == {
        "confirmed_outstanding": {"amount": "16000.00", "currency": "EUR"},
        "overdue_outstanding": {"amount": "0.00", "currency": "EUR"},
        "overdue_ratio": "0.000000",
        "core_firms": 1,
        "largest_core_firm_id": core_a.org.id,
        "concentration": "1.000000",
        "guarantee_cover": {"amount": "9000.00", "currency": "EUR"},
    }
    assert alloy["current"] == {
        "confirmed_outstanding": {"amount": "4000.00", "currency": "EUR"},
        "overdue_outstanding": {"amount": "4000.00", "currency": "EUR"},
        "overdue_ratio": "1.000000",
        "core_firms": 1,
        "largest_core_firm_id": core_c.org.id,
        "concentration": "1.000000",
        "guarantee_cover": {"amount": "0.00", "currency": "EUR"},
    }
    now = {m["period"]: m for m in pv["months"]}[month(today)]
    rates = sorted(Decimal(f["effective_annual_rate"]) for f in (r1_financing, r4_financing))
    low, high = rates
    assert now["financed_count"] == 2
    assert now["financed_volume"] == {"amount": "11400.00", "currency": "EUR"}
    assert now["smes_financed"] == 2
    assert now["green_share"] == six(Decimal(9000) / Decimal(11400))  # 0.789474
    assert now["effective_rate_p25"] == six(low + (high - low) / 4)
    assert now["effective_rate_p50"] == six((low + high) / 2)
    assert now["effective_rate_p75"] == six(low + (high - low) * 3 / 4)
    assert Decimal(now["days_upload_to_cash_p50"]) == 0  # minutes, not days, in a test
    assert now["financings_settled"] == 1
    assert now["financings_defaulted"] == 0
    assert now["default_ratio"] == "0.000000"
    assert now["registry_rollbacks"] == 1
    assert now["covers_attached"] == 1
    assert now["guarantee_cover_attached"] == {"amount": "9000.00", "currency": "EUR"}
    # receivables that fell due, by month of their due date (roots that were confirmed)
    due_pv = {m["period"]: m for m in pv["months"]}[last]
    assert due_pv["fell_due"] == {"amount": "19000.00", "currency": "EUR"}
    assert due_pv["went_overdue"] == {"amount": "0.00", "currency": "EUR"}
    due_alloy = {m["period"]: m for m in alloy["months"]}[month(soon)]
    assert due_alloy["fell_due"] == {"amount": "4000.00", "currency": "EUR"}
    assert due_alloy["overdue_ratio"] == "1.000000"
    for name in ("lithium", "chemicals", "bio"):
        assert cluster(report, name)["current"]["confirmed_outstanding"]["amount"] == "0.00"

    after = {m["period"]: m for m in report["platform"]["months"]}[month(today)]
    earlier = {m["period"]: m for m in before["platform"]["months"]}[month(today)]
    assert after["duplicate_uploads_refused"] == earlier["duplicate_uploads_refused"] + 1
    pool = await call(http, world.regulator, "GET", "/v1/risk-pool?currency=EUR")
    assert report["platform"]["pool_balance"] == pool.json()["balance"]

    # the same as CSV, by ?format=csv and by Accept
    as_csv = await stats(http, world.regulator, firms, currency="EUR", format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    current = next(r for r in rows if r["cluster"] == "pv" and r["period"] == "current")
    assert current["confirmed_outstanding"] == "16000.00"
    assert current["concentration"] == "1.000000"
    monthly = next(r for r in rows if r["cluster"] == "pv" and r["period"] == month(today))
    assert monthly["financed_volume"] == "11400.00"
    assert any(r["cluster"] == "platform" for r in rows)
    accept_csv = await http.get(
        "/v1/stats/clusters",
        params={"core_firm_id": firms[0], "currency": "EUR"},
        headers={**(await token(http, world.regulator)), "Accept": "text/csv"},
    )
    assert accept_csv.headers["content-type"].startswith("text/csv")


async def test_stats_refuse_bad_months_naming_the_parameter_and_other_roles(http, world):
    bad = await http.get(
        "/v1/stats/clusters", params={"from": "2026-13"}, headers=await token(http, world.regulator)
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0] == {
        "field": "from",
        "in": "query",
        "message": "a month as YYYY-MM",
    }
    backwards = await http.get(
        "/v1/stats/clusters",
        params={"from": "2026-05", "to": "2026-01"},
        headers=await token(http, world.regulator),
    )
    assert backwards.status_code == 422
    for who in (world.supplier, world.banks[0], world.guarantor, world.extra["auditor"]):
        response = await http.get("/v1/stats/clusters", headers=await token(http, who))
        assert response.status_code == 403
    default = (await stats(http, world.regulator, [str(uuid.uuid4())])).json()
    assert len(default["platform"]["months"]) == 6
    assert default["to"] == month(date.today())
