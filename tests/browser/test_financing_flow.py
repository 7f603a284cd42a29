"""The marketplace in a real browser, in Chinese and in English, against the real stack: the
supplier requests financing on a confirmed receivable → two banks bid, each watching the live
quote (htmx, ``pricing.quote`` on the server) as it types → the supplier accepts the best offer →
the financing page shows it ``registering`` and follows it (htmx polling) to
``awaiting_disbursement`` once the stack's worker and ledger have registered it in
``FinancingRegistry`` on anvil → the winning bank confirms the disbursement from its portfolio →
``funded``. Bank A never sees bank B's offer."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from services.api.organizations.models import Role
from tests.browser.conftest import CHROMIUM, Account, Shots, account, login, run
from tests.e2e.conftest import Stack
from tests.integration.invoices.intake_helpers import invoice_number, ubl

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

WORDS = {
    "zh_CN": {
        "request_financing": "申请融资",
        "min_advance": "最低预付比例（可选）",
        "ask": "向银行征集报价",
        "advance_rate": "预付比例",
        "annual_rate": "年利率",
        "fee": "手续费（CNY）",
        "place": "提交报价",
        "reference": "付款参考号",
        "registering": "链上登记中",
        "funded": "已放款",
    },
    "en": {
        "request_financing": "Request financing",
        "min_advance": "Minimum advance rate (optional)",
        "ask": "Ask banks for offers",
        "advance_rate": "Advance rate",
        "annual_rate": "Annual rate",
        "fee": "Fee (CNY)",
        "place": "Place offer",
        "reference": "payment reference",
        "registering": "registering on chain",
        "funded": "funded",
    },
}
FACE = "10000.00"


TOKENS: dict[str, dict[str, str]] = {}


def token(stack: Stack, who: Account) -> dict[str, str]:
    """An access token of the account's organisation (one per test: the token endpoint is rate
    limited)."""
    if who.username not in TOKENS:
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
        TOKENS[who.username] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    return TOKENS[who.username]


def confirmed_receivable(stack: Stack, supplier: Account, core: Account, due: date) -> str:
    """An invoice uploaded by the supplier and confirmed by its debtor, through the API."""
    body = ubl(
        supplier.party,
        core.party,
        number=invoice_number(),
        payable=FACE,
        currency="CNY",
        issue=(date.today() - timedelta(days=5)).isoformat(),
        due=due.isoformat(),
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


def api_state(stack: Stack, who: Account, financing_id: str) -> str:
    found = httpx.get(
        f"{stack.api_url}/v1/financings/{financing_id}", headers=token(stack, who), timeout=30
    )
    state: str = found.json()["state"]
    return state


def wait_registered(
    page: Any, stack: Stack, who: Account, financing_id: str, timeout: float = 150
) -> None:
    """The page (htmx polling, no reload) shows the financing registered once the API does."""
    deadline = time.monotonic() + timeout
    seen_at: float | None = None
    while page.get_attribute("#financing", "data-state") != "awaiting_disbursement":
        now = time.monotonic()
        if seen_at is None and api_state(stack, who, financing_id) == "awaiting_disbursement":
            seen_at = now
        if seen_at is not None and now - seen_at > 15:
            raise AssertionError("registered, but the page did not follow it (htmx polling)")
        if now > deadline:
            ledger = httpx.get(f"{stack.ledger_url}/v1/registry/financings/{financing_id}")
            raise AssertionError(
                f"the registration was not mined in {timeout}s; the api's outbox: "
                f"{run(lambda: outbox_rows(financing_id))}; the ledger: {ledger.text[:600]}"
            )
        time.sleep(1)


async def outbox_rows(financing_id: str) -> list[dict[str, Any]]:
    """The api's outbox events of the financing (delivered or not): what to look at when the
    registration does not arrive."""
    from sqlalchemy import text

    from qilian.kit import db

    async with db.transaction() as session:
        rows = await session.execute(
            text(
                "SELECT topic, attempts, delivered_at, dead_at FROM platform.outbox "
                "WHERE payload->>'financing_id' = :fid ORDER BY id"
            ),
            {"fid": financing_id},
        )
        return [dict(r._mapping) for r in rows]


def money_text(page: Any, selector: str) -> str:
    return re.sub(r"\s+", "", page.inner_text(selector))


def bid(page: Any, words: dict[str, str], annual_rate: str, expected_net: str) -> None:
    """Type the terms with the keyboard and wait for the live quote of exactly these terms."""
    page.get_by_label(words["advance_rate"], exact=True).fill("0.90")
    page.get_by_label(words["annual_rate"], exact=True).fill(annual_rate)
    page.get_by_label(words["fee"], exact=True).fill("")
    page.get_by_label(words["fee"], exact=True).press_sequentially("10.00", delay=30)
    page.wait_for_function(
        "expected => (document.querySelector('#quote-net') || {}).textContent?.includes(expected)",
        arg=expected_net,
        timeout=15_000,
    )


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_supplier_requests_banks_bid_supplier_accepts_bank_funds(
    browser: Any, stack: Stack, shots: Shots, pages: list[Any], language: str
) -> None:
    words = WORDS[language]
    supplier, core = account(Role.supplier), account(Role.core_firm)
    bank_a, bank_b = account(Role.bank), account(Role.bank)
    due = date.today() + timedelta(days=90)
    rid = confirmed_receivable(stack, supplier, core, due)
    days = (due - date.today()).days  # the quote counts from today (UTC) to the due date
    net_a = 9000 - round(9000 * 0.06 * days / 360, 2) - 10  # annual rate 6 %, ACT/360
    net_b = 9000 - round(9000 * 0.04 * days / 360, 2) - 10  # 4 %: the better offer
    net_a_text, net_b_text = f"{net_a:,.2f}", f"{net_b:,.2f}"

    # --- the supplier asks for financing
    page = login(browser, stack, supplier, language)
    pages.append(page)
    page.goto(f"{stack.api_url}/web/financing")
    shots(page, "supplier-financing-empty")
    page.get_by_role("link", name=words["request_financing"]).first.click()
    page.check(f"#rv-{rid}")
    page.get_by_label(words["min_advance"]).fill("0.80")
    shots(page, "supplier-request-form")
    page.get_by_role("button", name=words["ask"]).click()
    page.wait_for_url(re.compile(r"/web/financing/requests/frq_\w+\?done=created"))
    request_id = re.search(r"(frq_\w+)", page.url).group(1)  # type: ignore[union-attr]
    assert page.get_attribute("#request-state [data-state]", "data-state") == "open"
    shots(page, "supplier-request-open")

    # --- bank A: the open request, never the supplier; a bid with the live quote
    a_page = login(browser, stack, bank_a, language)
    pages.append(a_page)
    assert a_page.url.endswith("/web/bank/requests")
    row = a_page.locator(f'#open-requests tr[data-id="{request_id}"]')
    row.locator("[data-anchor]").wait_for()  # the anchoring badge, loaded by htmx
    assert core.party.name in row.inner_text()
    assert supplier.party.name not in a_page.content()
    shots(a_page, "bank-a-open-requests")
    row.get_by_role("link", name=request_id).click()
    bid(a_page, words, "0.06", net_a_text)
    assert net_a_text in money_text(a_page, "#quote-net")
    shots(a_page, "bank-a-live-quote")
    a_page.get_by_role("button", name=words["place"]).click()
    a_page.wait_for_url(re.compile(r"\?done=offer"))
    assert a_page.locator('#my-offers tr[data-state="active"]').count() == 1

    # --- bank B bids better, and sees only its own offer
    b_page = login(browser, stack, bank_b, language)
    pages.append(b_page)
    b_page.goto(f"{stack.api_url}/web/bank/requests/{request_id}")
    assert b_page.locator("#my-offers").count() == 0  # bank A's offer is not shown to it
    bid(b_page, words, "0.04", net_b_text)
    shots(b_page, "bank-b-live-quote")
    b_page.get_by_role("button", name=words["place"]).click()
    b_page.wait_for_url(re.compile(r"\?done=offer"))
    mine = b_page.locator("#my-offers tr[data-id]")
    assert mine.count() == 1
    b_offer = mine.first.get_attribute("data-id")
    a_page.goto(f"{stack.api_url}/web/bank/offers")
    assert str(b_offer) not in a_page.content()

    # --- the supplier sees both ranked and accepts the best
    page.goto(f"{stack.api_url}/web/financing/requests/{request_id}")
    first = page.locator('#offers tr[data-rank="1"]')
    assert first.get_attribute("data-id") == b_offer
    assert net_b_text in re.sub(r"\s+", "", first.locator("td.net").inner_text())
    assert page.locator('#offers tr[data-rank="2"] td.net').count() == 1
    shots(page, "supplier-ranked-offers")
    first.get_by_role("button").click()
    page.wait_for_url(re.compile(r"/web/financings/fin_\w+"))
    financing_id = re.search(r"(fin_\w+)", page.url).group(1)  # type: ignore[union-attr]
    state = page.get_attribute("#financing", "data-state")
    assert state in ("registering", "awaiting_disbursement")
    if state == "registering":
        assert words["registering"] in page.inner_text("#financing-state")
    shots(page, "supplier-financing-registering")
    # htmx polls the page until the worker and the ledger have registered it on chain
    wait_registered(page, stack, supplier, financing_id)
    assert page.locator('#registry tr[data-outcome="done"]').count() == 1
    assert page.locator("#registry code.hash").count() == 1  # the transaction on anvil
    shots(page, "supplier-financing-registered")

    # --- the winning bank confirms the disbursement from its portfolio
    b_page.goto(f"{stack.api_url}/web/bank/portfolio")
    awaiting = b_page.locator(f'#bucket-awaiting_disbursement tr[data-id="{financing_id}"]')
    awaiting.get_by_label(re.compile(financing_id)).fill(f"PAY-{language}-1")
    shots(b_page, "bank-b-portfolio-awaiting")
    awaiting.get_by_role("button").click()
    b_page.wait_for_url(re.compile(r"done=funded"))
    b_page.locator(f'tr[data-id="{financing_id}"][data-state="funded"]').wait_for()
    shots(b_page, "bank-b-portfolio-funded")
    page.goto(f"{stack.api_url}/web/financings/{financing_id}")
    assert page.get_attribute("#financing", "data-state") == "funded"
    assert words["funded"] in page.inner_text("#financing-state")
    assert net_b_text in money_text(page, "#net-proceeds")
    shots(page, "supplier-financing-funded")
    # bank A lost: its offer says so, the financing is not its to see
    a_page.goto(f"{stack.api_url}/web/bank/offers")
    assert a_page.locator('#offers tr[data-state="lost"]').count() == 1
    assert financing_id not in a_page.content()
    assert a_page.goto(f"{stack.api_url}/web/financings/{financing_id}").status == 404
    for context in {p.context for p in pages}:
        context.close()
