"""The regulator's pages in a real browser, in Chinese and in English, against the real stack: a
regulator logs in and lands on the cluster indicators, narrowed to a core firm of the test's own
(a receivable of 10 000.00 CNY uploaded and confirmed through the API); the table shows it, both
charts are drawn by the vendored Chart.js from the page's JSON block (no inline script: the page's
Content-Security-Policy would refuse one), and the early-warnings page opens from the navigation
and shows the payment-terms warning the stack's beat raises about that core firm; no script or
console error on any of them."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from services.api.organizations.models import Role
from tests.browser.conftest import CHROMIUM, Account, Shots, account, login, problems_of
from tests.e2e.conftest import Stack
from tests.integration.invoices.intake_helpers import invoice_number, ubl

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

WORDS = {
    "zh_CN": {
        "title": "产业集群指标",
        "pv": "光伏制造",
        "outstanding": "¥10,000.00",
        "alerts": "风险预警",
        "csv": "下载这些指标（CSV）",
        "terms": "账期超出政策",
    },
    "en": {
        "title": "Cluster indicators",
        "pv": "photovoltaic manufacturing",
        "outstanding": "CN¥10,000.00",
        "alerts": "Early warnings",
        "csv": "Download these indicators as CSV",
        "terms": "Payment terms beyond policy",
    },
}


def token(stack: Stack, who: Account) -> dict[str, str]:
    answer = httpx.post(
        f"{stack.api_url}/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": who.party.org.client_id,
            "client_secret": who.party.org.client_secret,
        },
        timeout=30,
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def confirmed_receivable(stack: Stack, supplier: Account, core: Account) -> str:
    """10 000.00 CNY owed by the core firm (cluster pv), uploaded and confirmed via the API."""
    body = ubl(
        supplier.party,
        core.party,
        number=invoice_number(),
        payable="10000.00",
        currency="CNY",
        issue=(date.today() - timedelta(days=5)).isoformat(),
        due=(date.today() + timedelta(days=60)).isoformat(),
    )
    created = httpx.post(
        f"{stack.api_url}/v1/invoices",
        files={"file": ("invoice.xml", body)},
        headers=token(stack, supplier),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    rid: str = created.json()["receivable"]["id"]
    confirmed = httpx.post(
        f"{stack.api_url}/v1/receivables/{rid}/confirm",
        json={},
        headers=token(stack, core),
        timeout=30,
    )
    assert confirmed.status_code == 200, confirmed.text
    return rid


def chart_drawn(page: Any, canvas: str) -> bool:
    """Chart.js made a chart on the canvas and it has a size on the page."""
    drawn: bool = page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const chart = window.Chart && window.Chart.getChart(canvas);
            return Boolean(chart) && canvas.width > 0 && canvas.height > 0
                && chart.data.datasets.length === 5;
        }""",
        canvas,
    )
    return drawn


def wait_alert(page: Any, stack: Stack, subject: str, timeout: float = 150) -> Any:
    """Reload the warnings of the payment-terms rule until one names ``subject``."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(f"{stack.api_url}/web/regulator/alerts?rule=payment_terms")
        row = page.locator(f"#alerts tr[data-subject='{subject}']")
        if row.count() == 1:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"no warning about {subject} in {timeout}s")
        time.sleep(3)


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_regulator_sees_the_indicators_and_their_charts(
    browser: Any, stack: Stack, shots: Shots, pages: list[Any], language: str
) -> None:
    words = WORDS[language]
    supplier, core, regulator = (
        account(Role.supplier),
        account(Role.core_firm),
        account(Role.regulator),
    )
    confirmed_receivable(stack, supplier, core)

    page = login(browser, stack, regulator, language)
    pages.append(page)
    assert page.url.split("?")[0].endswith("/web/regulator")  # the regulator's start page
    page.wait_for_selector("body[data-charts='drawn']")
    assert page.locator("h1").inner_text() == words["title"]
    shots(page, "dashboard")

    # narrowed to the test's own core firm: its cluster holds exactly the confirmed receivable
    page.goto(f"{stack.api_url}/web/regulator?core_firm_id={core.party.org.id}")
    page.wait_for_selector("body[data-charts='drawn']")
    row = page.locator("#current tr[data-cluster='pv']")
    assert words["pv"] in row.inner_text()
    assert row.locator("[data-figure='confirmed_outstanding']").inner_text() == words["outstanding"]
    for canvas in ("chart-volume", "chart-overdue"):
        assert chart_drawn(page, canvas), canvas
        box = page.locator(f"#{canvas}").bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 50
    assert page.get_by_role("link", name=words["csv"]).count() == 1
    shots(page, "dashboard-one-core-firm")

    page.get_by_role("link", name=words["alerts"]).click()
    page.wait_for_url(lambda url: "/web/regulator/alerts" in url)
    assert page.locator("h1").inner_text() == words["alerts"]
    # the stack's beat evaluates the rules every minute: the receivable is due 65 days after
    # issue, beyond the 60-day policy, so a payment-terms warning names the core firm
    row = wait_alert(page, stack, f"core_firm:{core.party.org.id}")
    facts = row.inner_text()
    assert core.party.name in facts
    assert words["terms"] in facts
    assert "65" in row.locator("dl.facts").inner_text()
    shots(page, "alerts")
    assert not problems_of(page)
