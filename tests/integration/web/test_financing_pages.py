"""The financing pages over HTTP (ASGI) on the session's PostgreSQL: the supplier requests
financing, compares the ranked offers and accepts one; banks see the open requests (never the
supplier), bid with a live quote, withdraw, and confirm the disbursement from their portfolio;
every form refuses without its CSRF token and puts a refusal next to its field; bank B never sees
bank A's offer; another organisation's request or financing is the 404 page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.api.financing.settings import FinancingSettings
from services.api.organizations.models import Role
from services.api.web import i18n
from tests.integration.financing.market import DUE, ISSUED, registry_answers
from tests.integration.receivables.lifecycle_helpers import confirmed, upload
from tests.integration.web.conftest import Login, Person, field_error, text_of

SHORT = FinancingSettings(min_auction_seconds=1, min_days_after_close=7)
WEB = Path(i18n.__file__).resolve().parent


@pytest.fixture
async def market(app: Any, http: Any, person: Login) -> dict[str, Any]:
    """A supplier with a confirmed receivable of 10 000.00 EUR due in 90 days, its core firm,
    two banks and another supplier, each a logged-in person."""
    app.state.financing_settings = SHORT
    supplier = await person(Role.supplier)
    core = await person(Role.core_firm)
    rid = await confirmed(
        http, supplier.party, core.party, payable="10000.00", issue=ISSUED, due=DUE
    )
    return {
        "http": http,
        "supplier": supplier,
        "core": core,
        "rid": rid,
        "bank_a": await person(Role.bank),
        "bank_b": await person(Role.bank),
        "other": await person(Role.supplier),
    }


def in_cst(delta: timedelta) -> str:
    """A ``datetime-local`` value (China Standard Time) ``delta`` from now."""
    return (datetime.now(UTC) + delta).astimezone(i18n.TIMEZONE).strftime("%Y-%m-%dT%H:%M")


async def open_request(supplier: Person, receivable_ids: list[str], **extra: str) -> str:
    response = await supplier.post(
        "/web/financing/requests",
        {
            "receivable_ids": receivable_ids,
            "closes_at": in_cst(timedelta(hours=2)),
            "recourse": "any",
            **extra,
        },
    )
    assert response.status_code == 303, text_of(response.text)[:2000]
    location = response.headers["location"]
    found = re.match(r"/web/financing/requests/(frq_\w+)\?done=created", location)
    assert found, response.headers["location"]
    return found.group(1)


async def bid(bank: Person, request_id: str, **terms: str) -> Any:
    data = {
        "advance_rate": "0.90",
        "annual_rate": "0.05",
        "fee": "10.00",
        "day_count": "ACT/360",
        "recourse": "true",
        **terms,
    }
    return await bank.post(f"/web/bank/requests/{request_id}/offers?lang=en", data)


def offer_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-id="(ofr_\w+)"', html)


# ---------------------------------------------------------------- the supplier's request


async def test_supplier_requests_financing_in_both_languages(market):
    supplier, rid = market["supplier"], market["rid"]
    english = await supplier.client.get(f"/web/financing/new?receivable_id={rid}&lang=en")
    assert english.status_code == 200
    assert "Request financing" in english.text
    assert re.search(rf'id="rv-{rid}" name="receivable_ids" value="{rid}" checked', english.text)
    assert '<label for="closes_at">' in english.text
    assert '<label for="min_advance_rate">' in english.text
    assert '<label for="recourse">' in english.text
    assert "€10,000.00" in english.text  # the open amount, formatted by Babel for English
    chinese = await supplier.client.get(f"/web/financing/new?receivable_id={rid}&lang=zh-CN")
    assert "申请融资" in chinese.text
    assert "€10,000.00" in chinese.text

    request_id = await open_request(supplier, [rid], min_advance_rate="0.80")
    page = await supplier.client.get(f"/web/financing/requests/{request_id}?done=created&lang=en")
    assert page.status_code == 200
    assert 'data-state="open"' in page.text
    assert "Your request is open" in page.text
    assert "80.00%" in page.text  # the minimum advance rate
    assert "No offer yet." in page.text
    listing = await supplier.client.get("/web/financing?lang=zh-CN")
    row = re.search(rf'<tr data-id="{request_id}">(.*?)</tr>', listing.text, re.S)
    assert row
    assert 'data-state="open"' in row.group(1)
    assert "接受出价中" in row.group(1)  # "open for bids"
    # the receivable is in the auction now: no longer offered by the form
    again = await supplier.client.get("/web/financing/new?lang=en")
    assert f'value="{rid}"' not in again.text


async def test_request_form_refusals_are_next_to_their_field(market):
    supplier, core, http = market["supplier"], market["core"], market["http"]
    nothing = await supplier.post(
        "/web/financing/requests?lang=en",
        {"closes_at": in_cst(timedelta(hours=2)), "min_advance_rate": "abc", "recourse": "any"},
    )
    assert nothing.status_code == 422
    assert field_error(nothing.text, "receivable_ids") == "Choose at least one receivable."
    assert field_error(nothing.text, "min_advance_rate")
    assert 'aria-describedby="receivable_ids-error"' in nothing.text
    assert 'value="abc"' in nothing.text  # what was typed is kept

    too_late = await supplier.post(
        "/web/financing/requests?lang=en",
        {"receivable_ids": market["rid"], "closes_at": in_cst(timedelta(days=45))},
    )
    assert too_late.status_code == 422
    assert "at most 30 days" in (field_error(too_late.text, "closes_at") or "")

    pending = (await upload(http, supplier.party, core.party, issue=ISSUED, due=DUE))["id"]
    refused = await supplier.post(
        "/web/financing/requests?lang=en",
        {"receivable_ids": pending, "closes_at": in_cst(timedelta(hours=2))},
    )
    assert refused.status_code == 409
    assert "it is not confirmed" in (field_error(refused.text, "receivable_ids") or "")

    not_a_date = await supplier.post(
        "/web/financing/requests?lang=zh-CN",
        {"receivable_ids": market["rid"], "closes_at": "tomorrow"},
    )
    assert not_a_date.status_code == 422
    assert field_error(not_a_date.text, "closes_at") == "请输入日期和时间。"


async def test_another_suppliers_receivable_cannot_be_asked_for(market):
    response = await market["other"].post(
        "/web/financing/requests?lang=en",
        {"receivable_ids": market["rid"], "closes_at": in_cst(timedelta(hours=2))},
    )
    assert response.status_code == 404
    assert "there is no receivable" in (field_error(response.text, "receivable_ids") or "")


# ---------------------------------------------------------------- banks, quotes, acceptance


async def test_bank_sees_pricing_facts_never_the_supplier(market):
    supplier, bank = market["supplier"], market["bank_a"]
    request_id = await open_request(supplier, [market["rid"]])
    start = await bank.client.get("/web")
    assert start.headers["location"] == "/web/bank/requests"
    for language, words in [("en", ["Financing requests open for bids", "Tier"]),
                            ("zh-CN", ["可出价的融资申请", "层级"])]:  # fmt: skip
        listing = await bank.client.get(f"/web/bank/requests?lang={language}")
        assert listing.status_code == 200
        row = re.search(rf'<tr data-id="{request_id}">(.*?)</tr>', listing.text, re.S)
        assert row, language
        assert market["core"].party.name in row.group(1)
        assert "€10,000.00" in row.group(1)
        assert f'<span id="anchor-{request_id}">' in row.group(1)
        assert "/web/bank/anchoring/requests?id=" in listing.text
        for word in words:
            assert word in listing.text
        assert supplier.party.name not in listing.text
    page = await bank.client.get(f"/web/bank/requests/{request_id}?lang=en")
    assert page.status_code == 200
    assert supplier.party.name not in page.text
    assert market["core"].party.name in page.text
    assert "photovoltaic manufacturing" in page.text  # the debtor's cluster
    assert "ledger unreachable" in page.text  # the anchoring (the tests' ledger is down)
    badge = await bank.client.get(
        f"/web/bank/anchoring/requests?id={request_id}&lang=en", headers={"HX-Request": "true"}
    )
    assert f'<span id="anchor-{request_id}" hx-swap-oob="true">' in badge.text
    assert 'data-anchor="unknown"' in badge.text
    assert "<html" not in badge.text


async def test_live_quote_is_the_server_arithmetic(market):
    request_id = await open_request(market["supplier"], [market["rid"]])
    bank = market["bank_a"]
    quote = await bank.client.get(
        f"/web/bank/requests/{request_id}/quote",
        params={"advance_rate": "0.90", "annual_rate": "0.05", "fee": "10.00",
                "day_count": "ACT/360", "lang": "en"},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert quote.status_code == 200
    # F = 10 000.00, 90 days: advance 9 000.00, discount 9 000 × 0.05 × 90 / 360 = 112.50,
    # net 9 000 − 112.50 − 10 = 8 877.50, effective (122.50 / 8 877.50) × 360 / 90 = 5.5196 %
    assert "€9,000.00" in quote.text
    assert "€112.50" in quote.text
    assert "€8,877.50" in quote.text
    assert "5.5196%" in quote.text
    assert "90 days" in quote.text
    act365 = await bank.client.get(
        f"/web/bank/requests/{request_id}/quote",
        params={"advance_rate": "0.90", "annual_rate": "0.05", "fee": "10.00",
                "day_count": "ACT/365", "lang": "en"},
    )  # fmt: skip
    assert "€110.96" in act365.text  # 9 000 × 0.05 × 90 / 365
    wrong = await bank.client.get(
        f"/web/bank/requests/{request_id}/quote",
        params={"advance_rate": "1.5", "annual_rate": "0.05", "fee": "10.00",
                "day_count": "ACT/360", "lang": "en"},
    )  # fmt: skip
    assert 'data-field="advance_rate"' in wrong.text
    assert "Advance rate" in wrong.text
    bad_day_count = await bank.client.get(
        f"/web/bank/requests/{request_id}/quote",
        params={"advance_rate": "0.9", "annual_rate": "0.05", "fee": "10.00",
                "day_count": "30/360", "lang": "en"},
    )  # fmt: skip
    assert 'data-field="day_count"' in bad_day_count.text
    nothing = await bank.client.get(
        f"/web/bank/requests/{request_id}/quote",
        params={"advance_rate": "0.10", "annual_rate": "0.05", "fee": "999.00",
                "day_count": "ACT/360", "lang": "en"},
    )  # fmt: skip
    assert "consume the whole advance" in nothing.text
    empty = await bank.client.get(f"/web/bank/requests/{request_id}/quote?lang=en")
    assert "Type the advance rate" in empty.text


async def test_bids_ranked_accept_the_best_register_and_fund(market):
    supplier, bank_a, bank_b = market["supplier"], market["bank_a"], market["bank_b"]
    request_id = await open_request(supplier, [market["rid"]])
    placed = await bid(bank_a, request_id, annual_rate="0.06")
    assert placed.status_code == 303
    assert placed.headers["location"] == f"/web/bank/requests/{request_id}?done=offer"
    assert (await bid(bank_b, request_id, annual_rate="0.04")).status_code == 303

    page = await supplier.client.get(f"/web/financing/requests/{request_id}?lang=en")
    ranked = re.findall(r'<tr data-id="(ofr_\w+)" data-rank="(\d*)"', page.text)
    assert [rank for _, rank in ranked] == ["1", "2"]
    best_row = re.search(rf'<tr data-id="{ranked[0][0]}".*?</tr>', page.text, re.S)
    assert best_row
    assert bank_b.party.name in best_row.group(0)
    assert "€8,900.00" in best_row.group(0)  # 9 000 − 9 000 × 0.04 × 90 / 360 − 10
    for header in ["Net proceeds", "Effective rate", "Advance", "Discount", "Fee", "Day count",
                   "Recourse", "Rank"]:  # fmt: skip
        assert f">{header}</th>" in page.text
    assert page.text.count('action="/web/financing/offers/') == 2
    chinese = await supplier.client.get(f"/web/financing/requests/{request_id}?lang=zh-CN")
    assert "净融资额" in chinese.text

    accepted = await supplier.post(f"/web/financing/offers/{ranked[0][0]}/accept")
    assert accepted.status_code == 303
    found = re.match(r"/web/financings/(fin_\w+)", accepted.headers["location"])
    assert found
    financing_id = found.group(1)
    shown = await supplier.client.get(accepted.headers["location"] + "&lang=en")
    assert 'data-state="registering"' in shown.text
    assert 'hx-trigger="every 2s"' in shown.text  # the page follows the registration
    assert "€8,900.00" in shown.text

    # the bank cannot fund yet: the refusal is on its page, 409
    early = await bank_b.post(
        f"/web/financings/{financing_id}/disbursement?lang=en", {"reference": "EARLY-1"}
    )
    assert early.status_code == 409
    assert "still being registered" in early.text

    assert await registry_answers(financing_id) == 1  # the ledger's answer: registered
    fragment = await supplier.client.get(
        f"/web/financings/{financing_id}?lang=en", headers={"HX-Request": "true"}
    )
    assert 'data-state="awaiting_disbursement"' in fragment.text
    assert "<html" not in fragment.text
    assert "hx-trigger" not in fragment.text  # polling stops
    assert 'id="disbursement-form"' not in fragment.text  # the supplier does not fund

    portfolio = await bank_b.client.get("/web/bank/portfolio?lang=en")
    awaiting = re.search(r'id="bucket-awaiting_disbursement">(.*?)</section>', portfolio.text, re.S)
    assert awaiting
    assert financing_id in awaiting.group(1)
    assert f'id="reference-{financing_id}"' in awaiting.group(1)

    wrong_amount = await bank_b.post(
        f"/web/financings/{financing_id}/disbursement?lang=en",
        {"reference": "PAY-1", "amount": "8899.99"},
    )
    assert wrong_amount.status_code == 422
    assert "net proceeds" in (field_error(wrong_amount.text, "amount") or "")
    assert 'value="PAY-1"' in wrong_amount.text
    no_reference = await bank_b.post(f"/web/financings/{financing_id}/disbursement?lang=en", {})
    assert no_reference.status_code == 422
    assert field_error(no_reference.text, "reference")

    funded = await bank_b.post(
        f"/web/financings/{financing_id}/disbursement",
        {"reference": "PAY-1", "back": "portfolio"},
    )
    assert funded.status_code == 303
    assert funded.headers["location"].startswith("/web/bank/portfolio?done=funded")
    portfolio = await bank_b.client.get("/web/bank/portfolio?lang=zh-CN")
    assert re.search(rf'<tr data-id="{financing_id}" data-state="funded">', portfolio.text)
    assert "已放款" in portfolio.text
    mine = await supplier.client.get("/web/financing?lang=en")
    assert re.search(rf'<tr data-id="{financing_id}">.*?data-state="funded"', mine.text, re.S)
    request_page = await supplier.client.get(f"/web/financing/requests/{request_id}?lang=en")
    assert 'id="request-state"><span class="state s-fin-funded"' in request_page.text
    assert "/accept" not in request_page.text


async def test_bank_b_never_sees_bank_a_offer(market):
    supplier, bank_a, bank_b = market["supplier"], market["bank_a"], market["bank_b"]
    request_id = await open_request(supplier, [market["rid"]])
    assert (await bid(bank_a, request_id, annual_rate="0.0377", fee="12.34")).status_code == 303
    a_page = await bank_a.client.get(f"/web/bank/requests/{request_id}?lang=en")
    [a_offer] = offer_ids(a_page.text)
    pages = [
        "/web/bank/requests",
        f"/web/bank/requests/{request_id}",
        "/web/bank/offers",
        "/web/bank/portfolio",
        f"/web/bank/requests/{request_id}/quote?advance_rate=0.9&annual_rate=0.05&fee=1",
    ]
    for path in pages:
        seen = await bank_b.client.get(path)
        assert seen.status_code == 200, path
        assert a_offer not in seen.text, path
        assert "3.77%" not in seen.text, path
        assert "12.34" not in seen.text, path
        assert bank_a.party.name not in seen.text, path
        assert 'data-state="active"' not in seen.text, path  # no "my offer" mark either
    assert (
        "You have not bid on this request."
        in (await bank_b.client.get(f"/web/bank/requests/{request_id}?lang=en")).text
    )
    assert (await bank_b.post(f"/web/bank/offers/{a_offer}/withdraw")).status_code == 404

    accepted = await supplier.post(f"/web/financing/offers/{a_offer}/accept")
    financing_id = accepted.headers["location"].split("/")[-1].split("?")[0]
    for path in [
        f"/web/bank/requests/{request_id}",
        f"/web/financings/{financing_id}",
        f"/web/bank/anchoring/requests?id={request_id}",  # no longer open, and never bid on
    ]:
        hidden = await bank_b.client.get(path + ("&" if "?" in path else "?") + "lang=en")
        assert hidden.status_code == 404, path
        assert "Not found" in hidden.text
    funding = await bank_b.post(f"/web/financings/{financing_id}/disbursement", {"reference": "x"})
    assert funding.status_code == 404
    assert financing_id not in (await bank_b.client.get("/web/bank/portfolio")).text
    assert financing_id in (await bank_a.client.get("/web/bank/portfolio")).text


async def test_another_organisations_request_and_financing_are_the_404_page(market):
    supplier, other, bank = market["supplier"], market["other"], market["bank_a"]
    request_id = await open_request(supplier, [market["rid"]])
    await bid(bank, request_id)
    [offer_id] = offer_ids((await bank.client.get(f"/web/bank/requests/{request_id}")).text)
    for path in [f"/web/financing/requests/{request_id}?lang=en", "/web/financing/requests/frq_x"]:
        response = await other.client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found" in response.text
    assert (await other.post(f"/web/financing/offers/{offer_id}/accept")).status_code == 404
    assert (await other.post(f"/web/financing/requests/{request_id}/cancel")).status_code == 404
    accepted = await supplier.post(f"/web/financing/offers/{offer_id}/accept")
    financing_id = accepted.headers["location"].split("/")[-1].split("?")[0]
    assert (await other.client.get(f"/web/financings/{financing_id}")).status_code == 404
    # the debtor is a party of the financing: it may read it, never fund it
    core_view = await market["core"].client.get(f"/web/financings/{financing_id}")
    assert core_view.status_code == 200
    assert 'id="disbursement-form"' not in core_view.text
    # a role that may not use a page: the 403 page
    assert (await supplier.client.get("/web/bank/requests")).status_code == 403
    assert (await bank.client.get("/web/financing")).status_code == 403


# ---------------------------------------------------------------- forms and their refusals


async def test_every_form_refuses_without_its_csrf_token(market):
    supplier, bank = market["supplier"], market["bank_a"]
    request_id = await open_request(supplier, [market["rid"]])
    await bid(bank, request_id)
    [offer_id] = offer_ids((await bank.client.get(f"/web/bank/requests/{request_id}")).text)
    forms = [
        (supplier, "/web/financing/requests",
         {"receivable_ids": market["rid"], "closes_at": in_cst(timedelta(hours=2))}),
        (supplier, f"/web/financing/requests/{request_id}/cancel", {}),
        (supplier, f"/web/financing/offers/{offer_id}/accept", {}),
        (bank, f"/web/bank/requests/{request_id}/offers",
         {"advance_rate": "0.9", "annual_rate": "0.05", "fee": "1", "day_count": "ACT/360"}),
        (bank, f"/web/bank/offers/{offer_id}/withdraw", {}),
        (bank, "/web/financings/fin_x/disbursement", {"reference": "x"}),
    ]  # fmt: skip
    for who, path, data in forms:
        for token in (None, "forged", market["other"].csrf):
            sent = {**data, **({"csrf_token": token} if token else {})}
            response = await who.client.post(path + "?lang=en", data=sent)
            assert response.status_code == 403, (path, token)
            assert "CSRF" in response.text, path
    # nothing happened: the request is open, the offer active
    page = await supplier.client.get(f"/web/financing/requests/{request_id}")
    assert 'id="request-state"><span class="state s-fin-open"' in page.text
    assert re.search(rf'<tr data-id="{offer_id}" data-rank="1" data-state="active"', page.text)


async def test_bid_refusals_are_next_to_their_field(market):
    supplier, bank = market["supplier"], market["bank_a"]
    request_id = await open_request(
        supplier, [market["rid"]], min_advance_rate="0.85", recourse="non_recourse"
    )
    page = await bank.client.get(f"/web/bank/requests/{request_id}?lang=en")
    for name in ["advance_rate", "annual_rate", "fee", "day_count", "recourse", "expires_at"]:
        assert f'<label for="{name}">' in page.text, name
    assert re.search(r'<option value="false" selected>', page.text)  # the request's preference
    cases = [
        ({"advance_rate": "1.5"}, "advance_rate", 422, "less than or equal to 1"),
        ({"advance_rate": "0.80"}, "advance_rate", 422, "at least 0.85"),
        ({"annual_rate": "0.50"}, "annual_rate", 422, "between 0 and 0.36"),
        ({"fee": "5000.00"}, "fee", 422, "at most 0.10 of the face value"),
        ({"fee": "abc"}, "fee", 422, ""),
        ({"recourse": "true"}, "recourse", 422, "non-recourse"),
        ({"expires_at": in_cst(timedelta(days=3))}, "expires_at", 422, "outlive the auction"),
        ({"expires_at": "soon"}, "expires_at", 422, "Enter a date and time."),
    ]
    for terms, name, status, words in cases:
        response = await bid(bank, request_id, **{"recourse": "false", **terms})
        assert response.status_code == status, (terms, text_of(response.text)[:500])
        message = field_error(response.text, name)
        assert message is not None, terms
        assert words in message, (terms, message)
        assert f'aria-describedby="{name}-error' in response.text, terms
        typed = next(iter(terms.values()))
        assert f'value="{typed}"' in response.text or f'value="{typed}" selected' in (
            response.text
        ), terms
    assert offer_ids((await bank.client.get(f"/web/bank/requests/{request_id}")).text) == []


async def test_bank_replaces_and_withdraws_its_offer(market):
    supplier, bank = market["supplier"], market["bank_a"]
    request_id = await open_request(supplier, [market["rid"]])
    await bid(bank, request_id, annual_rate="0.06")
    await bid(bank, request_id, annual_rate="0.05")
    offers = await bank.client.get("/web/bank/offers?lang=en")
    states = re.findall(r'<tr data-id="(ofr_\w+)" data-state="(\w+)"', offers.text)
    assert sorted(s for _, s in states) == ["active", "replaced"]
    active = next(i for i, s in states if s == "active")
    assert "€8,877.50" in offers.text  # the active offer's net proceeds, as if accepted today
    withdrawn = await bank.post(f"/web/bank/offers/{active}/withdraw")
    assert withdrawn.status_code == 303
    after = await bank.client.get("/web/bank/offers?state=withdrawn&lang=zh-CN")
    assert re.search(rf'<tr data-id="{active}" data-state="withdrawn">', after.text)
    assert "已撤回" in after.text
    again = await bank.post(f"/web/bank/offers/{active}/withdraw?lang=en")
    assert again.status_code == 409
    assert "the offer is withdrawn" in again.text
    requester = await supplier.client.get(f"/web/financing/requests/{request_id}?lang=en")
    assert "/accept" not in requester.text  # no active offer left to accept


async def test_supplier_cancels_an_open_request(market):
    supplier, bank = market["supplier"], market["bank_a"]
    request_id = await open_request(supplier, [market["rid"]])
    await bid(bank, request_id)
    cancelled = await supplier.post(f"/web/financing/requests/{request_id}/cancel")
    assert cancelled.status_code == 303
    page = await supplier.client.get(cancelled.headers["location"] + "&lang=en")
    assert 'id="request-state"><span class="state s-fin-cancelled"' in page.text
    assert 'id="cancel-request-form"' not in page.text
    assert re.search(r'data-state="expired"', page.text)  # the bank's offer expired
    twice = await supplier.post(f"/web/financing/requests/{request_id}/cancel?lang=en")
    assert twice.status_code == 409
    assert "the request is cancelled" in twice.text
    form = await supplier.client.get("/web/financing/new")
    assert f'value="{market["rid"]}"' in form.text  # free to finance again
    assert request_id not in (await bank.client.get("/web/bank/requests")).text


# ---------------------------------------------------------------- languages


def test_every_message_of_the_financing_pages_is_translated():
    """The strings of these pages (templates and code) all have a Chinese translation."""
    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import read_po

    with (i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    templates = sorted(
        p
        for pattern in ("financing*.html", "bank_*.html", "_quote.html", "_financing.html")
        for p in (WEB / "templates").glob(pattern)
    )
    files = [WEB / "financing.py", WEB / "bank.py", *templates]
    keywords = {"_": None, "N_": None, "t": (2,), "gettext": None}
    wanted: set[str] = set()
    for path in files:
        method = "python" if path.suffix == ".py" else "jinja2"
        options = {"extensions": "jinja2.ext.i18n", "trim_blocks": "True", "lstrip_blocks": "True"}
        for _, message, _, _ in extract_from_file(method, str(path), keywords, options=options):
            wanted.add(message if isinstance(message, str) else message[0])
    assert len(wanted) > 100
    assert sorted(wanted - translated) == []
