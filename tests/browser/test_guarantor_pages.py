"""The guarantor's pages in a real browser, in Chinese and in English, against the real stack: a
guarantor logs in and lands on its programmes, fills the form to open one with the keyboard —
first with loss shares that do not sum to 1 (the refusal appears under the shares, what was typed
kept), then corrected — and sees the programme listed with its terms; the covers and claims pages
open from the navigation; no script or console error on any page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.api.organizations.models import Role
from tests.browser.conftest import CHROMIUM, Shots, account, login, problems_of
from tests.e2e.conftest import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

WORDS = {
    "zh_CN": {
        "title": "担保方案",
        "name": "名称",
        "fee_rate": "年担保费率",
        "guarantor": "担保机构（本机构）",
        "bank": "放款银行",
        "pool": "风险补偿资金池",
        "cluster": "光伏制造",
        "open": "设立方案",
        "covers": "担保的融资",
        "claims": "代偿",
        "no_cover": "您的担保方案尚未担保任何融资。",
        "no_claim": "暂无代偿。",
        "active": "有效",
        "shares": "担保机构: 40%",
    },
    "en": {
        "title": "Guarantee programmes",
        "name": "Name",
        "fee_rate": "Guarantee fee rate, a year",
        "guarantor": "Guarantor (you)",
        "bank": "The financing bank",
        "pool": "The risk compensation pool (风险补偿资金池)",
        "cluster": "photovoltaic manufacturing",
        "open": "Open the programme",
        "covers": "Covered financings",
        "claims": "Claims",
        "no_cover": "Your programmes cover no financing yet.",
        "no_claim": "No claim.",
        "active": "active",
        "shares": "guarantor: 40%",
    },
}


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_guarantor_opens_a_programme_and_sees_it_listed(
    browser: Any, stack: Stack, shots: Shots, pages: list[Any], language: str
) -> None:
    words = WORDS[language]
    guarantor = account(Role.guarantor)
    name = f"政银担 {language} {uuid.uuid4().hex[:6]}"

    page = login(browser, stack, guarantor, language)
    pages.append(page)
    assert page.url.split("?")[0].endswith("/web/guarantor")  # the guarantor's start page
    assert page.locator("h1").inner_text() == words["title"]
    assert page.locator("#programmes").count() == 0
    shots(page, "no-programme-yet")

    page.get_by_label(words["name"], exact=True).fill(name)
    page.get_by_label(words["cluster"], exact=True).check()
    page.get_by_label(words["fee_rate"], exact=True).fill("0.015")
    page.get_by_label(words["guarantor"], exact=True).fill("0.4")
    page.get_by_label(words["bank"], exact=True).fill("0.2")
    page.get_by_label(words["pool"], exact=True).fill("0.3")  # 0.9 in all: refused
    page.keyboard.press("Enter")  # the form is sent from the keyboard
    page.wait_for_selector("#loss_shares-error")
    assert "1" in page.locator("#loss_shares-error").inner_text()
    assert page.locator("#loss_shares").get_attribute("aria-invalid") == "true"
    assert page.get_by_label(words["name"], exact=True).input_value() == name
    assert page.get_by_label(words["cluster"], exact=True).is_checked()
    shots(page, "shares-refused")

    page.get_by_label(words["pool"], exact=True).fill("0.4")
    page.get_by_role("button", name=words["open"]).click()
    page.wait_for_url(lambda url: "done=created" in url)
    assert page.locator("#created-notice").count() == 1
    row = page.locator("#programmes tbody tr").first
    assert name in row.inner_text()
    assert row.locator("[data-figure='fee_rate']").inner_text() == "1.50%"
    assert words["cluster"] in row.locator("[data-figure='eligibility']").inner_text()
    assert words["shares"] in row.locator("[data-figure='loss_shares']").inner_text()
    assert row.locator("[data-figure='active']").inner_text() == words["active"]
    shots(page, "programme-listed")

    page.get_by_role("link", name=words["covers"], exact=True).click()
    page.wait_for_url(lambda url: "/web/guarantor/covers" in url)
    assert words["no_cover"] in page.inner_text("main")
    page.get_by_role("link", name=words["claims"], exact=True).click()
    page.wait_for_url(lambda url: "/web/guarantor/claims" in url)
    assert words["no_claim"] in page.inner_text("main")
    shots(page, "claims")
    assert not problems_of(page)
