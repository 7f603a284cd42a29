"""The regulator's pages over HTTP on real PostgreSQL: the cluster indicators of a small scenario
of the test's own core firms (narrowed to them with ``core_firm_id``, as the API allows, so other
tests' data does not count) in Chinese and English with their formatted figures and chart data;
the CSV link; who may see the pages; the early warnings, newest first and paged, with the facts
that raised them."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from qilian.kit import db
from services.api.financing.settings import FinancingSettings
from services.api.organizations.models import Cluster, Role
from services.api.receivables.tasks import sweep_overdue
from services.api.risk import alerts
from services.api.risk.models import Alert
from services.api.risk.settings import RiskSettings
from services.api.web import regulator
from tests.integration.auth.conftest import client_for
from tests.integration.risk.helpers import World, funded, new_world, party, receivable
from tests.integration.web.conftest import Login, add_user, login, text_of

SHORT = FinancingSettings(min_auction_seconds=1, min_days_after_close=7)


@pytest.fixture
async def world(app: Any, db_engine: None) -> World:
    app.state.financing_settings = SHORT
    return await new_world()


def month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def percent(ratio: str) -> str:
    """A ratio as the page shows it (both languages write 12.35%)."""
    value = (Decimal(ratio) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"{value:,}%"


def cell(html: str, row: str, figure: str) -> str:
    """The text of the ``data-figure`` cell in the first row opening with ``row``."""
    start = html.index(row)
    found = re.search(rf'data-figure="{figure}">([^<]*)<', html[start:])
    assert found, (row, figure)
    return found.group(1).strip()


def chart_data(html: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="regulator-chart-data">(.*?)</script>', html, re.S
    )
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


async def scenario(http: Any, world: World) -> dict[str, Any]:
    """pv: 10 000.00 CNY financed at 0.9 by the green supplier (9 000.00 financed this month);
    alloy: 4 000.00 confirmed, due soon, then overdue."""
    financing, _ = await funded(http, world, None, "10000.00", currency="CNY")
    soon = (date.today() + timedelta(days=20)).isoformat()
    await receivable(http, world, "4000.00", "CNY", core=world.alloy_core, due=soon)
    await sweep_overdue(date.fromisoformat(soon) + timedelta(days=1), grace_days=0)
    return financing


def dashboard_url(world: World, language: str, **extra: str) -> str:
    query = [("currency", "CNY"), ("lang", language)]
    query += [("core_firm_id", world.core.org.id), ("core_firm_id", world.alloy_core.org.id)]
    query += list(extra.items())
    return f"/web/regulator?{urlencode(query)}"


async def test_dashboard_shows_the_scenario_in_chinese_and_english(http, world, person: Login):
    financing = await scenario(http, world)
    viewer = await person(party=world.regulator)
    rate = percent(financing["effective_annual_rate"])
    today = date.today()
    expected: dict[str, dict[str, Any]] = {
        "zh_CN": {
            "pv": "光伏制造",
            "alloy": "合金材料",
            "money": "¥10,000.00",
            "financed": "¥9,000.00",
            "overdue": "¥4,000.00",
            "zero": "¥0.00",
            "month": f"{today.year}年{today.month}月",
            "words": ["产业集群指标", "已确权未结清余额", "逾期率", "集中度", "绿色融资占比"],
            "volume_axis": "融资额（CNY）",
        },
        "en": {
            "pv": "photovoltaic manufacturing",
            "alloy": "alloy materials",
            "money": "CN¥10,000.00",
            "financed": "CN¥9,000.00",
            "overdue": "CN¥4,000.00",
            "zero": "CN¥0.00",
            "month": today.strftime("%B %Y"),
            "words": ["Cluster indicators", "Confirmed outstanding", "Concentration"],
            "volume_axis": "Financed volume (CNY)",
        },
    }
    for language, words in expected.items():
        page = await viewer.client.get(dashboard_url(world, language))
        assert page.status_code == 200, page.text
        html = page.text
        text = text_of(html)
        for word in words["words"]:
            assert word in text, (language, word)
        assert words["pv"] in text
        assert words["alloy"] in text
        # now: pv holds the financed 10 000.00, alloy the overdue 4 000.00
        pv_now = '<tr data-cluster="pv">'
        alloy_now = '<tr data-cluster="alloy">'
        assert cell(html, pv_now, "confirmed_outstanding") == words["money"]
        assert cell(html, pv_now, "overdue_ratio") == "0.00%"
        assert cell(html, pv_now, "concentration") == "100.00%"
        assert cell(html, alloy_now, "overdue_outstanding") == words["overdue"]
        assert cell(html, alloy_now, "overdue_ratio") == "100.00%"
        assert cell(html, '<tr data-cluster="bio">', "confirmed_outstanding") == words["zero"]
        # this month in pv: one financing of 9 000.00 by one green SME, at its effective rate
        pv_month = '<table class="data months" data-cluster="pv">'
        this_month = html[html.index(pv_month) :]
        row = f'<tr data-period="{month(today)}">'
        assert words["month"] in text_of(this_month[: this_month.index("</table>")])
        assert cell(this_month, row, "financed_volume") == words["financed"]
        assert cell(this_month, row, "financed_count") == "1"
        assert cell(this_month, row, "smes_financed") == "1"
        assert cell(this_month, row, "effective_rate_p50") == rate
        assert cell(this_month, row, "effective_rate_p25") == rate
        assert cell(this_month, row, "green_share") == "100.00%"
        assert cell(this_month, row, "default_ratio") == "—"  # nothing closed yet
        # the charts' data: the same figures, labels in the page's language
        data = chart_data(html)
        assert data["labels"][-1] == words["month"]
        assert len(data["labels"]) == 6
        volume = {d["label"]: d["data"] for d in data["volume"]}
        assert volume[words["pv"]][-1] == 9000.0
        assert volume[words["alloy"]] == [0.0] * 6
        assert data["words"]["volume"] == words["volume_axis"]
        overdue = {d["label"]: d["data"] for d in data["overdue"]}
        assert overdue[words["pv"]] == [None] * 6  # nothing of pv fell due in these months
        # no inline script: the page's scripts are files, its data a JSON block
        assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", html) == []
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/web/static/regulator.js" defer></script>' in html


async def test_the_overdue_month_and_the_csv_link(http, world, person: Login):
    await scenario(http, world)
    viewer = await person(party=world.operator)  # the operator reads the indicators too
    soon = date.today() + timedelta(days=20)
    page = await viewer.client.get(
        dashboard_url(world, "en", **{"from": month(date.today()), "to": month(soon)})
    )
    assert page.status_code == 200
    alloy = page.text[page.text.index('<table class="data months" data-cluster="alloy">') :]
    assert cell(alloy, f'<tr data-period="{month(soon)}">', "fell_due") == "CN¥4,000.00"
    assert cell(alloy, f'<tr data-period="{month(soon)}">', "overdue_ratio") == "100.00%"
    overdue = {d["label"]: d["data"] for d in chart_data(page.text)["overdue"]}
    assert overdue["alloy materials"][-1] == 1.0
    # the CSV of the same choice, read with the page's session cookie
    found = re.search(r'<a href="([^"]+)" download id="csv-download">', page.text)
    assert found
    link = found.group(1).replace("&amp;", "&")
    assert link.startswith("/v1/stats/clusters?")
    answer = await viewer.client.get(link)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    current = next(r for r in rows if r["cluster"] == "pv" and r["period"] == "current")
    assert current["confirmed_outstanding"] == "10000.00"
    assert current["currency"] == "CNY"
    assert {r["period"] for r in rows if r["cluster"] == "alloy"} == {
        "current",
        month(date.today()),
        month(soon),
    }


async def test_a_bad_month_is_the_error_page_naming_it(world, person: Login):
    viewer = await person(party=world.regulator)
    page = await viewer.client.get("/web/regulator?from=2026-13&lang=en")
    assert page.status_code == 422
    assert "from" in text_of(page.text)
    backwards = await viewer.client.get("/web/regulator?from=2026-05&to=2026-01&lang=en")
    assert backwards.status_code == 422


async def test_only_the_regulator_and_the_operator_see_the_pages(app, world, person: Login):
    for role in (Role.supplier, Role.core_firm, Role.bank, Role.auditor, Role.guarantor):
        someone = await person(role)
        for path in ("/web/regulator", "/web/regulator/alerts"):
            page = await someone.client.get(f"{path}?lang=en")
            assert page.status_code == 403, (role, path)
            assert "Cluster indicators" not in page.text
        home = await someone.client.get("/web")
        assert home.headers["location"] != "/web/regulator"
    for who in (world.regulator, world.operator):
        viewer = await person(party=who)
        for path in ("/web/regulator", "/web/regulator/alerts"):
            assert (await viewer.client.get(path)).status_code == 200
        home = await viewer.client.get("/web")
        assert home.status_code == 303
        assert home.headers["location"] == "/web/regulator"
        nav = (await viewer.client.get("/web/regulator/alerts?lang=zh-CN")).text
        assert '<a href="/web/regulator">产业集群指标</a>' in nav
        assert '<a href="/web/regulator/alerts">风险预警</a>' in nav
    # a regulator logging in lands on the dashboard
    client = client_for(app)
    try:
        answer = await login(client, await add_user(world.regulator.org.id))
        assert answer.headers["location"] == "/web/regulator"
    finally:
        await client.aclose()
    # without a session: the login page, and back
    anonymous = client_for(app)
    try:
        page = await anonymous.get("/web/regulator")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/web/login?next=")
    finally:
        await anonymous.aclose()


async def raise_payment_terms(core_id: str, at: datetime) -> Alert:
    """The payment-terms rule evaluated for one core firm, its finding raised at ``at``."""
    async with db.transaction() as session:
        found = await alerts.evaluate(session, RiskSettings(), at, [core_id], ["payment_terms"])
        assert len(found) == 1, found
        alert = await alerts.raise_alert(session, found[0], at)
    assert alert is not None
    return alert


async def test_alerts_page_shows_a_raised_alert_with_its_facts(http, world, person: Login):
    # the helpers' receivables are due 95 days after issue: beyond the 60-day policy
    rid = await receivable(http, world, "800.00", "CNY", core=world.core)
    alert = await raise_payment_terms(world.core.org.id, datetime.now(UTC))
    viewer = await person(party=world.regulator)
    checks = {
        "zh_CN": ["账期超出政策", "中", "核心企业", "最长账期（天）", "政策账期（天）", "示例"],
        "en": ["Payment terms beyond policy", "medium", "Longest term (days)", "Policy (days)"],
    }
    for language, words in checks.items():
        page = await viewer.client.get(f"/web/regulator/alerts?rule=payment_terms&lang={language}")
        assert page.status_code == 200
        start = page.text.index(f'<tr data-id="{alert.id}"')
        row = page.text[start : page.text.index("</tr>", start)]
        text = text_of(row)
        for word in words:
            assert word in text, (language, word)
        assert world.core.name in text  # the subject and the fact name the core firm
        assert rid in text  # the example receivable
        assert re.search(r"(Longest term \(days\)|最长账期（天）) 95(?!\d)", text), text
        assert re.search(r"(Policy \(days\)|政策账期（天）) 60(?!\d)", text), text
        assert alert.period in text
        assert "(UTC+8)" in text
    unknown = await viewer.client.get("/web/regulator/alerts?rule=nope&lang=en")
    assert unknown.status_code == 422
    other = await viewer.client.get("/web/regulator/alerts?rule=pool_cover&lang=en")
    assert alert.id not in other.text


async def test_alerts_are_newest_first_and_paged(http, world, person: Login, monkeypatch):
    monkeypatch.setattr(regulator, "PAGE_SIZE", 2)
    firms = [await party(Role.core_firm, cluster=Cluster.bio) for _ in range(3)]
    for firm in firms:
        await receivable(http, world, "500.00", "CNY", core=firm)
    start = datetime.now(UTC)
    raised = []
    for n, firm in enumerate(firms):
        raised.append(await raise_payment_terms(firm.org.id, start + timedelta(seconds=n)))
    mine = {a.id for a in raised}
    viewer = await person(party=world.regulator)
    seen: list[str] = []
    url: str | None = "/web/regulator/alerts?rule=payment_terms&lang=en"
    pages = 0
    while url and pages < 50:
        page = await viewer.client.get(url)
        assert page.status_code == 200
        ids = re.findall(r'<tr data-id="(alr_[0-9a-f]+)"', page.text)
        assert len(ids) <= 2
        seen += [i for i in ids if i in mine]
        found = re.search(r'<a href="([^"]+)" id="next-page">', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
        assert url is None or "rule=payment_terms" in url
        pages += 1
    assert seen == [a.id for a in reversed(raised)]
    assert pages >= 2
    forged = await viewer.client.get("/web/regulator/alerts?cursor=bm9wZQ&lang=en")
    assert forged.status_code == 422
    naive = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00","alr_x"]').decode().rstrip("=")
    without_zone = await viewer.client.get(f"/web/regulator/alerts?cursor={naive}&lang=en")
    assert without_zone.status_code == 422
