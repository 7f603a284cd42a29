"""The guarantor's pages over HTTP (ASGI) on real PostgreSQL: its programmes and the form that
opens one (the risk service's ``create_programme``, read back through the API), each refusal next
to the field it names and nothing kept, CSRF; the financings its programmes cover and, after a
covered default, its claims — in Chinese and English with money formatted for each; only the
guarantor reaches the pages, and one guarantor never sees another's programmes, covers or claims."""

from __future__ import annotations

import html as htmllib
import re
from decimal import Decimal
from typing import Any

import pytest

from services.api.financing.settings import FinancingSettings
from services.api.organizations.models import Role
from tests.integration.auth.conftest import client_for
from tests.integration.receivables.lifecycle_helpers import call
from tests.integration.risk.helpers import (
    World,
    financing_of,
    funded,
    new_world,
    party,
    programme,
    run_to_default,
)
from tests.integration.web.conftest import Login, Person, add_user, field_error, login, text_of

SHORT = FinancingSettings(min_auction_seconds=1, min_days_after_close=7)
PAGES = ("/web/guarantor", "/web/guarantor/covers", "/web/guarantor/claims")
SHARES_523 = [
    {"party": "guarantor", "share": "0.5"},
    {"party": "bank", "share": "0.2"},
    {"party": "pool", "share": "0.3"},
]


@pytest.fixture
async def world(app: Any, db_engine: None) -> World:
    app.state.financing_settings = SHORT
    return await new_world()


def row(html: str, row_id: str) -> str:
    """The HTML of the table row ``data-id="{row_id}"``."""
    found = re.search(rf'<tr data-id="{re.escape(row_id)}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, row_id
    return found.group(1)


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">(.*?)</td>', html, re.S)
    assert found, name
    return text_of(found.group(1))


def cny(amount: str, language: str) -> str:
    """An amount of CNY as each language writes it (Babel: ¥ in Chinese, CN¥ in English)."""
    value = f"{Decimal(amount):,.2f}"
    return f"¥{value}" if language == "zh_CN" else f"CN¥{value}"


def form(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "西宁政银担 SME",
        "currency": "CNY",
        "max_amount": "",
        "fee_rate": "0.015",
        "share_guarantor": "0.4",
        "share_bank": "0.2",
        "share_pool": "0.4",
        "share_other": "",
        "other_organization_id": "",
    }
    data.update(fields)
    return data


async def open_programme(guarantor: Person, **fields: Any) -> str:
    response = await guarantor.post("/web/guarantor/programmes?lang=en", form(**fields))
    assert response.status_code == 303, text_of(response.text)[:2000]
    found = re.fullmatch(r"/web/guarantor\?done=created&id=(gpr_\w+)", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


def programme_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-id="(gpr_\w+)"', html)


# ---------------------------------------------------------------- programmes


async def test_guarantor_opens_a_programme_through_the_form_in_both_languages(
    http, world, person: Login
):
    guarantor = await person(party=world.guarantor)
    assert (await guarantor.client.get("/web")).headers["location"] == "/web/guarantor"
    empty = await guarantor.client.get("/web/guarantor?lang=zh-CN")
    assert empty.status_code == 200
    assert "担保方案" in text_of(empty.text)
    assert "您尚未设立担保方案。" in text_of(empty.text)
    for name in ("name", "max_amount", "fee_rate", "share_guarantor", "share_bank", "share_pool"):
        assert f'<label for="{name}">' in empty.text, name
    assert '<input type="hidden" name="csrf_token"' in empty.text

    programme_id = await open_programme(
        guarantor,
        max_amount="2000000.00",
        clusters=["pv", "lithium"],
        green_only="true",
        share_guarantor="0.4",
        share_bank="0.2",
        share_pool="0.2",
        share_other="0.2",
        other_organization_id=world.reguarantor.org.id,
    )
    # the programme is the risk service's: the API reads the same terms back
    api = await call(http, world.guarantor, "GET", f"/v1/guarantee-programmes/{programme_id}")
    assert api.status_code == 200, api.text
    stored = api.json()
    assert stored["guarantor_id"] == world.guarantor.org.id
    assert stored["max_amount"] == {"amount": "2000000.00", "currency": "CNY"}
    assert stored["clusters"] == ["lithium", "pv"]
    assert stored["green_only"] is True
    assert Decimal(stored["fee_rate"]) == Decimal("0.015")
    assert [(s["party"], Decimal(s["share"])) for s in stored["loss_shares"]] == [
        ("guarantor", Decimal("0.4")),
        ("bank", Decimal("0.2")),
        ("pool", Decimal("0.2")),
        ("other", Decimal("0.2")),
    ]
    assert stored["loss_shares"][3]["organization_id"] == world.reguarantor.org.id

    expected: dict[str, dict[str, Any]] = {
        "zh_CN": {
            "notice": f"担保方案 {programme_id} 已设立",
            "eligibility": "锂电储能, 光伏制造 · 仅限绿色供应商",
            "shares": ["担保机构: 40%", "银行: 20%", "风险补偿资金池: 20%", "其他机构"],
            "active": "有效",
        },
        "en": {
            "notice": f"Programme {programme_id} opened",
            "eligibility": (
                "lithium energy storage, photovoltaic manufacturing · green suppliers only"
            ),
            "shares": ["guarantor: 40%", "bank: 20%", "risk compensation pool: 20%", "other party"],
            "active": "active",
        },
    }
    for language, words in expected.items():
        page = await guarantor.client.get(
            f"/web/guarantor?done=created&id={programme_id}&lang={language}"
        )
        assert page.status_code == 200
        assert words["notice"] in text_of(page.text)
        html = row(page.text, programme_id)
        assert "西宁政银担 SME" in text_of(html)
        assert figure(html, "max_amount") == cny("2000000.00", language)
        assert figure(html, "fee_rate") == "1.50%"
        assert figure(html, "eligibility") == words["eligibility"]
        shares = figure(html, "loss_shares")
        for share in words["shares"]:
            assert share in shares, (language, share)
        assert f"({world.reguarantor.name}): 20%" in shares  # the other party, named
        assert figure(html, "active") == words["active"]

    # a second programme, without limit or cluster: newest first
    second = await open_programme(guarantor, name="every cluster", fee_rate="0")
    page = await guarantor.client.get("/web/guarantor?lang=en")
    assert programme_ids(page.text) == [second, programme_id]
    assert figure(row(page.text, second), "max_amount") == "no limit"
    assert figure(row(page.text, second), "eligibility") == "every cluster"
    assert figure(row(page.text, second), "fee_rate") == "0.00%"


async def test_programme_refusals_are_next_to_their_field_and_nothing_is_kept(
    http, world, person: Login
):
    guarantor = await person(party=world.guarantor)
    other = world.reguarantor.org.id
    cases: list[tuple[dict[str, Any], str, str]] = [
        # (fields, the field the refusal is under, its English words): each a 422
        (
            {"share_pool": "0.2", "share_other": "0.1999999999", "other_organization_id": other},
            "loss_shares",
            "must sum to exactly 1",
        ),
        (
            {"share_guarantor": "", "share_bank": "0.5", "share_pool": "0.5"},
            "loss_shares",
            "the guarantor bears a share of its own programme",
        ),
        (
            {"share_guarantor": "", "share_bank": "", "share_pool": ""},
            "loss_shares",
            "Give the guarantor's share at least.",
        ),
        ({"fee_rate": "abc"}, "fee_rate", "Enter a decimal number such as 0.4."),
        ({"fee_rate": "1"}, "fee_rate", "Enter a number below 1."),
        (
            {"share_bank": "1.2", "share_pool": ""},
            "share_bank",
            "Enter a number of at most 1.",
        ),
        ({"max_amount": "lots"}, "max_amount", "Enter an amount such as 1250.50."),
        ({"max_amount": "-5.00"}, "max_amount", "max_amount is positive"),
        ({"name": ""}, "name", "Required."),
        (
            {"share_pool": "0.2", "share_other": "0.2"},
            "other_organization_id",
            "an other party names its organisation",
        ),
        (
            {"share_pool": "0.2", "share_other": "0.2", "other_organization_id": "org_nobody"},
            "other_organization_id",
            "there is no organisation org_nobody",
        ),
    ]
    for fields, name, words in cases:
        response = await guarantor.post("/web/guarantor/programmes?lang=en", form(**fields))
        assert response.status_code == 422, (fields, text_of(response.text)[:1500])
        message = field_error(response.text, name)
        assert message is not None, (fields, name, text_of(response.text)[:1500])
        assert words in htmllib.unescape(message), (fields, message)
        assert re.search(rf'id="{name}"[^>]*aria-invalid="true"', response.text), name
        # what was typed is kept
        for key, value in fields.items():
            if value and key != "name":
                assert f'value="{value}"' in response.text, key
    # in Chinese, the person's words
    chinese = await guarantor.post(
        "/web/guarantor/programmes?lang=zh-CN", form(fee_rate="abc", share_bank="x")
    )
    assert chinese.status_code == 422
    assert field_error(chinese.text, "fee_rate") == "请输入小数，例如 0.4。"
    assert field_error(chinese.text, "share_bank") == "请输入小数，例如 0.4。"
    # nothing was opened
    listing = await call(
        http,
        world.guarantor,
        "GET",
        f"/v1/guarantee-programmes?guarantor_id={world.guarantor.org.id}",
    )
    assert listing.json()["items"] == []
    assert programme_ids((await guarantor.client.get("/web/guarantor")).text) == []


async def test_the_programme_form_refuses_without_its_csrf_token(http, world, person: Login):
    guarantor = await person(party=world.guarantor)
    someone = await person(Role.guarantor)
    for token in (None, "forged", someone.csrf):
        data = {**form(), **({"csrf_token": token} if token else {})}
        response = await guarantor.client.post("/web/guarantor/programmes?lang=en", data=data)
        assert response.status_code == 403, token
    listing = await call(
        http,
        world.guarantor,
        "GET",
        f"/v1/guarantee-programmes?guarantor_id={world.guarantor.org.id}",
    )
    assert listing.json()["items"] == []


# ---------------------------------------------------------------- covers and claims


async def covered_default(http: Any, world: World) -> dict[str, Any]:
    """The world's guarantor covers a financing of 10 000.00 CNY (advance 9 000.00, shares
    guarantor 0.5, bank 0.2, pool 0.3, fee 2 % a year); the financing is funded and then
    defaults unpaid: a loss of 9 000.00, the guarantor's claim 4 500.00."""
    opened = await programme(http, world, currency="CNY", fee_rate="0.02", loss_shares=SHARES_523)
    financing, _ = await funded(http, world, opened["id"], "10000.00", currency="CNY")
    return {"programme": opened, "financing": financing}


async def test_covers_and_claims_in_both_languages(http, world, person: Login):
    scenario = await covered_default(http, world)
    financing_id = scenario["financing"]["id"]
    guarantor = await person(party=world.guarantor)
    seen = await financing_of(http, world.guarantor, financing_id)
    cover = seen["guarantee"]
    assert cover["covered"] == {"amount": "9000.00", "currency": "CNY"}
    bank_name = world.banks[0].name

    states = {"zh_CN": "已放款", "en": "funded"}
    for language, state in states.items():
        page = await guarantor.client.get(f"/web/guarantor/covers?lang={language}")
        assert page.status_code == 200
        html = row(page.text, financing_id)
        assert f'<a href="/web/financings/{financing_id}">' in html
        assert figure(html, "bank") == bank_name
        assert figure(html, "covered") == cny("9000.00", language)
        assert figure(html, "share") == "50%"
        assert figure(html, "fee").startswith(cny(cover["fee"]["amount"], language))
        assert "(2.00%)" in figure(html, "fee")
        assert scenario["programme"]["name"] in text_of(html)
        assert f'data-state="funded">{state}<' in html
    # the financing's own page, which its guarantor may read
    detail = await guarantor.client.get(f"/web/financings/{financing_id}?lang=en")
    assert detail.status_code == 200
    assert '<a href="/web/guarantor/covers">' in detail.text
    nothing = await guarantor.client.get("/web/guarantor/claims?lang=en")
    assert "No claim." in text_of(nothing.text)

    await run_to_default()
    seen = await financing_of(http, world.guarantor, financing_id)
    assert seen["state"] == "defaulted"
    by_party = {c["party"]: c for c in seen["guarantee"]["claims"]}
    assert by_party["guarantor"]["amount"] == {"amount": "4500.00", "currency": "CNY"}
    claim_id = by_party["guarantor"]["id"]
    expected = {
        "zh_CN": {"state": "已发起", "as": "担保机构", "defaulted": "已违约"},
        "en": {"state": "raised", "as": "guarantor", "defaulted": "defaulted"},
    }
    for language, words in expected.items():
        page = await guarantor.client.get(f"/web/guarantor/claims?lang={language}")
        assert page.status_code == 200
        # its own claim only: not the bank's borne part nor the pool's
        assert re.findall(r'<tr data-id="(clm_\w+)"', page.text) == [claim_id]
        html = row(page.text, claim_id)
        assert f'<a href="/web/financings/{financing_id}">' in html
        assert figure(html, "bank") == bank_name
        assert figure(html, "amount") == cny("4500.00", language)
        assert figure(html, "loss") == cny("9000.00", language)
        assert figure(html, "share") == "50%"
        assert f'data-state="raised">{words["state"]}<' in html
        assert words["as"] in text_of(html)
        assert figure(html, "raised_at").endswith("(UTC+8)")
        assert figure(html, "paid_at") == "—"
        covers = await guarantor.client.get(f"/web/guarantor/covers?lang={language}")
        assert f'data-state="defaulted">{words["defaulted"]}<' in row(covers.text, financing_id)
    # the state filter
    raised = await guarantor.client.get("/web/guarantor/claims?state=raised&lang=en")
    assert claim_id in raised.text
    paid = await guarantor.client.get("/web/guarantor/claims?state=paid&lang=en")
    assert claim_id not in paid.text


async def test_the_guarantor_records_paying_its_claim_through_the_form(http, world, person: Login):
    scenario = await covered_default(http, world)
    await run_to_default()
    financing_id = scenario["financing"]["id"]
    guarantor = await person(party=world.guarantor)
    page = (await guarantor.client.get("/web/guarantor/claims?lang=en")).text
    [claim_id] = re.findall(r'<tr data-id="(clm_\w+)"', page)
    html = row(page, claim_id)
    assert f'action="/web/guarantor/claims/{claim_id}/payment"' in html
    assert 'name="amount" value="4500.00"' in html  # the open amount, sent back as shown
    assert "Record payment of CN¥4,500.00" in text_of(html)
    path = f"/web/guarantor/claims/{claim_id}/payment?lang=en"
    paid = {"amount": "4500.00", "currency": "CNY"}

    # refusals: the form again with its error, the claim still raised
    blank = await guarantor.post(path, {**paid, "reference": "  "})
    assert blank.status_code == 422
    assert field_error(blank.text, f"reference-{claim_id}") == "Required."
    other_amount = await guarantor.post(path, {"amount": "4499.99", "currency": "CNY",
                                               "reference": "HX-1"})  # fmt: skip
    assert other_amount.status_code == 422
    assert "open amount" in text_of(row(other_amount.text, claim_id))
    assert 'value="HX-1"' in row(other_amount.text, claim_id)  # what was typed is kept
    assert (await guarantor.client.post(path, data={**paid, "reference": "HX-1"})).status_code == (
        403  # no CSRF token
    )
    someone = await person(party=await party(Role.guarantor))
    assert (await someone.post(path, {**paid, "reference": "HX-1"})).status_code == 404
    bank = await person(Role.bank)
    assert (await bank.post(path, {**paid, "reference": "HX-1"})).status_code == 403
    seen = await financing_of(http, world.guarantor, financing_id)
    by_party = {c["party"]: c for c in seen["guarantee"]["claims"]}
    assert by_party["guarantor"]["state"] == "raised"

    done = await guarantor.post(path, {**paid, "reference": " HX-2026-0042 "})
    assert done.status_code == 303
    assert done.headers["location"] == f"/web/guarantor/claims?done=paid&id={claim_id}"
    seen = await financing_of(http, world.guarantor, financing_id)
    claim = {c["party"]: c for c in seen["guarantee"]["claims"]}["guarantor"]
    assert claim["state"] == "paid"
    assert claim["payment_reference"] == "HX-2026-0042"
    for language, state in {"en": "paid", "zh_CN": "已付清"}.items():
        after = await guarantor.client.get(
            f"/web/guarantor/claims?done=paid&id={claim_id}&lang={language}"
        )
        html = row(after.text, claim_id)
        assert f'data-state="paid">{state}<' in html
        assert figure(html, "payment") == "HX-2026-0042"
        assert "<form" not in html  # paid: no form any more
        assert claim_id in text_of(after.text.split('id="paid-notice"')[1].split("</p>")[0])
    again = await guarantor.post(path, {**paid, "reference": "HX-3"})
    assert again.status_code == 409  # paid already: the page says so, nothing paid twice
    assert "paid already" in text_of(again.text)


# ---------------------------------------------------------------- who sees what


async def test_a_guarantor_never_sees_another_guarantors_programmes_covers_or_claims(
    http, world, person: Login
):
    scenario = await covered_default(http, world)
    await run_to_default()
    financing_id = scenario["financing"]["id"]
    mine = await person(party=world.guarantor)
    other = await person(party=await party(Role.guarantor))
    theirs = await open_programme(other, name="the other guarantor's")

    # the first guarantor sees its own (the test's control) and not the other's
    own_programmes = (await mine.client.get("/web/guarantor?lang=en")).text
    assert programme_ids(own_programmes) == [scenario["programme"]["id"]]
    own_covers = (await mine.client.get("/web/guarantor/covers?lang=en")).text
    assert financing_id in own_covers
    own_claims = (await mine.client.get("/web/guarantor/claims?lang=en")).text
    own_claim_ids = re.findall(r'<tr data-id="(clm_\w+)"', own_claims)
    assert len(own_claim_ids) == 1

    # the other guarantor: only its own programme, no cover, no claim, the financing is 404
    programmes = (await other.client.get("/web/guarantor?lang=en")).text
    assert programme_ids(programmes) == [theirs]
    assert scenario["programme"]["id"] not in programmes
    covers = (await other.client.get("/web/guarantor/covers?lang=en")).text
    assert financing_id not in covers
    assert "Your programmes cover no financing yet." in text_of(covers)
    claims = (await other.client.get("/web/guarantor/claims?lang=en")).text
    assert own_claim_ids[0] not in claims
    assert financing_id not in claims
    assert "No claim." in text_of(claims)
    for state in ("raised", "queued", "paid", "borne"):
        filtered = (await other.client.get(f"/web/guarantor/claims?state={state}")).text
        assert financing_id not in filtered, state
    page = await other.client.get(f"/web/financings/{financing_id}?lang=en")
    assert page.status_code == 404
    assert theirs not in (await mine.client.get("/web/guarantor?lang=en")).text


async def test_only_the_guarantor_reaches_its_pages(app, world, person: Login):
    for role in (
        Role.supplier,
        Role.core_firm,
        Role.bank,
        Role.auditor,
        Role.regulator,
        Role.operator,
    ):
        someone = await person(role)
        for path in PAGES:
            page = await someone.client.get(f"{path}?lang=en")
            assert page.status_code == 403, (role, path)
            assert "Guarantee programmes" not in page.text, (role, path)
        refused = await someone.post("/web/guarantor/programmes?lang=en", form())
        assert refused.status_code == 403, role
        assert (await someone.client.get("/web")).headers["location"] != "/web/guarantor"
    guarantor = await person(party=world.guarantor)
    for path in PAGES:
        assert (await guarantor.client.get(path)).status_code == 200, path
    nav = (await guarantor.client.get("/web/guarantor/claims?lang=zh-CN")).text
    assert '<a href="/web/guarantor">担保方案</a>' in nav
    assert '<a href="/web/guarantor/covers">担保的融资</a>' in nav
    assert '<a href="/web/guarantor/claims">代偿</a>' in nav
    # the place kept for these pages is gone
    assert (await guarantor.client.get("/web/later")).status_code == 404
    # a guarantor logging in lands on its programmes
    client = client_for(app)
    try:
        answer = await login(client, await add_user(world.guarantor.org.id))
        assert answer.status_code == 303
        assert answer.headers["location"] == "/web/guarantor"
    finally:
        await client.aclose()
    anonymous = client_for(app)
    try:
        for path in PAGES:
            page = await anonymous.get(path)
            assert page.status_code == 303
            assert page.headers["location"].startswith("/web/login?next=")
    finally:
        await anonymous.aclose()
