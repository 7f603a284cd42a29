"""What every page shares: static files, the 404 page of unknown addresses, language choice, the
redirect of an htmx request without a session, and a form refused by a domain rule that needs a
field the page shows only then (the EIP-712 signature of a core firm with a signing key)."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from qilian.kit import db
from services.api.organizations.models import Organization, Role
from services.api.web import i18n
from tests.integration.web.conftest import field_error
from tests.integration.web.test_pages import upload


async def test_static_files_and_vendored_libraries_are_served(http):
    for path, kind in [
        ("/web/static/app.css", "text/css"),
        ("/web/static/app.js", "javascript"),
        ("/web/static/vendor/htmx-4.0.1.min.js", "javascript"),
        ("/web/static/vendor/chart-4.6.1.umd.min.js", "javascript"),
    ]:
        response = await http.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path
    page = await http.get("/web/login")
    assert '<script src="/web/static/vendor/htmx-4.0.1.min.js"' in page.text
    assert "https://" not in page.text.split("<body>")[0]  # nothing from a CDN


async def test_an_unknown_page_is_the_html_404_page(person):
    supplier = await person(Role.supplier)
    response = await supplier.client.get("/web/no/such/page?lang=en")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text


def test_accept_language_follows_quality_values():
    assert i18n.from_accept_language("fr-FR, en;q=0.8, zh-CN;q=0.9") == "zh_CN"
    assert i18n.from_accept_language("zh-TW;q=0.2, en-US;q=0.5") == "en"
    assert i18n.from_accept_language("fr, de;q=0.5") is None
    assert i18n.from_accept_language("en;q=0, zh;q=0.1") == "zh_CN"
    assert i18n.normalise("zh-Hans") == "zh_CN"
    assert i18n.normalise("EN-gb") == "en"


def test_every_message_has_its_chinese_translation():
    from babel.messages.pofile import read_po

    with (i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    missing = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert not missing
    with (i18n.LOCALE_DIR / "messages.pot").open("rb") as source:
        template = read_po(source)
    assert {m.id for m in template if m.id} <= {m.id for m in catalog if m.id}


async def test_htmx_request_without_a_session_is_sent_to_login(http):
    response = await http.get("/web/receivables", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"].startswith("/web/login?next=")


async def test_confirming_without_the_required_signature_is_an_error_on_that_field(person):
    supplier = await person(Role.supplier)
    core = await person(Role.core_firm)
    rid = await upload(supplier, core.party)
    async with db.transaction() as session:
        await session.execute(
            update(Organization)
            .where(col(Organization.id) == core.party.org.id)
            .values(signing_address="0x" + "ab" * 20)
        )
    page = await core.client.get(f"/web/receivables/{rid}?lang=en")
    assert 'name="signature"' in page.text
    response = await core.post(f"/web/receivables/{rid}/confirm?lang=en")
    assert response.status_code == 422
    assert "signing address" in (field_error(response.text, "signature") or "")
    malformed = await core.post(f"/web/receivables/{rid}/confirm", {"signature": "0x12"})
    assert malformed.status_code == 422
    assert field_error(malformed.text, "signature")


def test_money_is_written_exactly_as_babel_writes_it_for_each_language():
    from decimal import Decimal

    from babel.numbers import format_currency

    from qilian.kit.money import Money

    for language in i18n.LANGUAGES:
        formats = i18n.Formats(language)
        for amount in ["0", "0.5", "7", "-1234.5", "1234567.89", "1000000000.01"]:
            for currency in ["CNY", "EUR", "USD", "JPY", "KWD"]:
                exact = amount if currency != "JPY" else str(int(Decimal(amount)))
                money = Money.of(exact, currency)
                expected = format_currency(money.amount, currency, locale=language)
                assert formats.money(money) == expected, (language, amount, currency)
    assert i18n.Formats("zh_CN").money(Money.of("1130", "CNY")) == "¥1,130.00"
    assert i18n.Formats("en").money(Money.of("1130", "CNY")) == "CN¥1,130.00"


async def test_pages_forbid_frames_inline_code_and_other_origins(http):
    page = await http.get("/web/login")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert "form-action 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # every script is a file, as the policy demands
    assert " style=" not in page.text
