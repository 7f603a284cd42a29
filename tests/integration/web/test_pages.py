"""The web pages over real HTTP (ASGI) on the session's PostgreSQL: login, language, CSRF,
authorisation (another organisation's receivable is the 404 page) and the supplier's and core
firm's forms, each calling the same services as the JSON API."""

from __future__ import annotations

import re

from services.api.organizations.models import Role
from tests.integration.auth.conftest import client_for
from tests.integration.invoices.intake_helpers import invoice_number, new_party, ubl
from tests.integration.web.conftest import PASSWORD, Login, Person, field_error, text_of


async def upload(supplier: Person, core_party, **kw) -> str:
    """One invoice through the upload page; the id of the receivable it created."""
    data = ubl(supplier.party, core_party, number=invoice_number(), **kw)
    response = await supplier.post("/web/invoices", files={"files": ("inv.xml", data)})
    assert response.status_code == 200, response.text
    found = re.search(
        r'data-outcome="created".*?href="/web/receivables/(rcv_[^"]+)"', response.text, re.S
    )
    assert found, text_of(response.text)
    return found.group(1)


# ---------------------------------------------------------------- login and language


async def test_login_page_is_chinese_by_default_and_english_when_the_browser_asks(http):
    chinese = await http.get("/web/login")
    assert chinese.status_code == 200
    assert '<html lang="zh-CN">' in chinese.text
    assert "用户名" in chinese.text
    assert '<label for="username">' in chinese.text
    english = await http.get("/web/login", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert '<html lang="en">' in english.text
    assert "Username" in english.text


async def test_lang_query_switches_and_is_remembered_in_a_cookie(http):
    switched = await http.get("/web/login?lang=en", headers={"Accept-Language": "zh-CN"})
    assert "Username" in switched.text
    assert "qilian_lang=en" in switched.headers["set-cookie"]
    again = await http.get("/web/login", headers={"Accept-Language": "zh-CN"})
    assert "Username" in again.text  # the cookie wins over the browser's preference
    back = await http.get("/web/login?lang=zh-CN")
    assert "用户名" in back.text


async def test_login_with_a_wrong_password_shows_the_error_and_sets_no_session(app, person):
    someone = await person(Role.supplier)
    async with client_for(app) as client:
        response = await client.post(
            "/web/login?lang=en", data={"username": someone.username, "password": "wrong one"}
        )
        assert response.status_code == 401
        assert "Wrong username or password" in response.text
        assert "qilian_session" not in client.cookies


async def test_empty_login_fields_are_errors_next_to_each_field(http):
    response = await http.post("/web/login?lang=en", data={"username": "", "password": ""})
    assert response.status_code == 422
    assert field_error(response.text, "username") == "Enter your username."
    assert field_error(response.text, "password") == "Enter your password."
    assert 'aria-describedby="username-error"' in response.text


async def test_a_page_without_a_session_redirects_to_login_and_back(app, person):
    async with client_for(app) as client:
        response = await client.get("/web/receivables?settlement=open")
        assert response.status_code == 303
        assert (
            response.headers["location"]
            == "/web/login?next=%2Fweb%2Freceivables%3Fsettlement%3Dopen"
        )
    supplier = await person(Role.supplier)
    async with client_for(app) as client:
        response = await client.post(
            "/web/login",
            data={
                "username": supplier.username,
                "password": "correct horse battery staple",
                "next": "/web/receivables?settlement=open",
            },
        )
        assert response.headers["location"] == "/web/receivables?settlement=open"
        elsewhere = await client.post(
            "/web/login",
            data={
                "username": supplier.username,
                "password": "correct horse battery staple",
                "next": "https://evil.example/",
            },
        )
        assert elsewhere.headers["location"] == "/web/receivables"
        for target in ("//evil.example/web", "/webhooks", "/web\\evil.example", "/v1/me"):
            sneaky = await client.post(
                "/web/login",
                data={"username": supplier.username, "password": PASSWORD, "next": target},
            )
            assert sneaky.headers["location"] == "/web/receivables", target


async def test_each_role_lands_on_its_start_page(person):
    for role, start in [
        (Role.supplier, "/web/receivables"),
        (Role.core_firm, "/web/confirmations"),
        (Role.auditor, "/web/audit"),
        (Role.guarantor, "/web/guarantor"),
    ]:
        who = await person(role)
        response = await who.client.get("/web")
        assert response.headers["location"] == start, role


async def test_logout_needs_the_csrf_token_and_ends_the_session(person):
    supplier = await person(Role.supplier)
    refused = await supplier.client.post("/web/logout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert (await supplier.client.get("/web/receivables")).status_code == 200
    done = await supplier.post("/web/logout")
    assert done.status_code == 303
    supplier.client.cookies.clear()
    assert (await supplier.client.get("/web/receivables")).status_code == 303


# ---------------------------------------------------------------- supplier


async def test_upload_several_files_gives_each_its_outcome_and_reason(person):
    supplier = await person(Role.supplier)
    core = await new_party(Role.core_firm)
    stranger = await new_party(Role.core_firm)
    number = invoice_number()
    good = ubl(supplier.party, core, number=number)
    unknown_buyer = ubl(supplier.party, stranger, number=invoice_number()).replace(
        stranger.tax_id.encode(), b"DE000000000"
    )
    response = await supplier.post(
        "/web/invoices?lang=en",
        files=[
            ("files", ("good.xml", good)),
            ("files", ("again.xml", good)),
            ("files", ("nobody.xml", unknown_buyer)),
            ("files", ("junk.xml", b"<not an invoice")),
        ],
    )
    assert response.status_code == 200
    outcomes = dict(re.findall(r'data-file="([^"]+)" data-outcome="([^"]+)"', response.text))
    assert outcomes == {
        "good.xml": "created",
        "again.xml": "refused",
        "nobody.xml": "refused",
        "junk.xml": "refused",
    }
    text = text_of(response.text)
    assert "already uploaded (duplicate)" in text
    assert "the buyer is not registered on the platform" in text


async def test_an_upload_of_which_nothing_is_accepted_answers_422_with_the_reason(person):
    supplier = await person(Role.supplier)
    response = await supplier.post(
        "/web/invoices?lang=en",
        files={"files": ("junk.xml", b"<not an invoice")},
        headers={"X-Requested-With": "fetch"},  # the upload script's request: the row alone
    )
    assert response.status_code == 422
    assert response.text.lstrip().startswith("<tr")
    assert 'data-file="junk.xml" data-outcome="refused"' in response.text
    assert "refused" in text_of(response.text)


async def test_upload_without_a_file_is_an_error_next_to_the_field(person):
    supplier = await person(Role.supplier)
    response = await supplier.post("/web/invoices?lang=en")
    assert response.status_code == 422
    assert field_error(response.text, "files") == "Choose at least one file."


async def test_bulk_import_file_becomes_a_job_whose_progress_the_page_follows(person, dispatched):
    supplier = await person(Role.supplier)
    core = await new_party(Role.core_firm)
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(3):
            z.writestr(f"i{i}.xml", ubl(supplier.party, core, number=invoice_number()))
    response = await supplier.post(
        "/web/invoices", files={"files": ("batch.zip", archive.getvalue())}
    )
    job = re.search(r'hx-get="/web/imports/(imp_[^"]+)"', response.text)
    assert job, text_of(response.text)
    assert dispatched == [job.group(1)]
    progress = await supplier.client.get(
        f"/web/imports/{job.group(1)}", headers={"HX-Request": "true"}
    )
    assert progress.status_code == 200
    assert 'data-status="queued"' in progress.text
    assert 'hx-trigger="every 1s"' in progress.text
    assert "0 / 3" in progress.text


async def test_receivables_table_shows_every_axis_and_money_and_dates_per_language(person):
    supplier = await person(Role.supplier)
    core = await new_party(Role.core_firm)
    rid = await upload(supplier, core, payable="1130.00", currency="CNY", due="2026-03-15")
    english = await supplier.client.get("/web/receivables?lang=en")
    row = re.search(rf'<tr data-id="{rid}">(.*?)</tr>', english.text, re.S)
    assert row, english.text
    cells = row.group(1)
    for axis, value in [
        ("confirmation", "pending"),
        ("holding", "held"),
        ("financing", "unfinanced"),
        ("settlement", "open"),
        ("dispute", "none"),
    ]:
        assert f'data-axis="{axis}" data-state="{value}"' in cells
    assert "CN¥1,130.00" in cells
    assert "Mar 15, 2026" in cells
    assert f'<span id="anchor-{rid}">' in cells  # its badge, swapped in by the table's one load
    assert f"/web/anchoring/receivables?id={rid}" in english.text
    chinese = await supplier.client.get("/web/receivables?lang=zh-CN")
    found = re.search(rf'<tr data-id="{rid}">(.*?)</tr>', chinese.text, re.S)
    assert found
    cells = found.group(1)
    assert "¥1,130.00" in cells
    assert "CN¥" not in cells
    assert "2026年3月15日" in cells
    assert "待确权" in cells


async def test_receivables_filters_apply_and_an_unknown_value_is_an_error_page(person):
    supplier = await person(Role.supplier)
    core = await new_party(Role.core_firm)
    rid = await upload(supplier, core)
    pending = await supplier.client.get("/web/receivables?confirmation=pending&holding=")
    assert rid in pending.text
    confirmed = await supplier.client.get("/web/receivables?confirmation=confirmed")
    assert rid not in confirmed.text
    bad = await supplier.client.get("/web/receivables?confirmation=maybe")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")


async def test_anchoring_badges_of_a_table_in_one_answer_say_the_ledger_is_unreachable(person):
    supplier = await person(Role.supplier)
    core = await new_party(Role.core_firm)
    first, second = await upload(supplier, core), await upload(supplier, core)
    badges = await supplier.client.get(
        f"/web/anchoring/receivables?id={first}&id={second}", headers={"HX-Request": "true"}
    )
    assert badges.status_code == 200
    assert "<html" not in badges.text
    found = re.findall(
        r'<span id="anchor-(\w+)" hx-swap-oob="true">.*?data-anchor="(\w+)"', badges.text, re.S
    )
    assert found == [(first, "unknown"), (second, "unknown")]  # the tests' ledger is down


async def test_anchoring_badges_refuse_an_empty_or_oversized_list(person):
    supplier = await person(Role.supplier)
    rid = await upload(supplier, await new_party(Role.core_firm))
    assert (await supplier.client.get("/web/anchoring/receivables")).status_code == 422
    many = "&".join(f"id={rid}" for _ in range(51))
    assert (await supplier.client.get(f"/web/anchoring/receivables?{many}")).status_code == 422


async def test_another_organisations_receivable_is_the_404_page(person):
    supplier = await person(Role.supplier)
    other = await person(Role.supplier)
    core = await new_party(Role.core_firm)
    rid = await upload(supplier, core)
    for path in (
        f"/web/receivables/{rid}",
        f"/web/receivables/{rid}/lineage",
        f"/web/anchoring/receivables?id={rid}",
        f"/web/anchoring/receivables?id={await upload(other, core)}&id={rid}",  # one not its own
    ):
        response = await other.client.get(path + ("&" if "?" in path else "?") + "lang=en")
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found" in response.text
        assert rid in response.text
    forged = await other.post(f"/web/receivables/{rid}/split", {"parts": "50\n69"})
    assert forged.status_code == 404
    assert (await supplier.client.get(f"/web/receivables/{rid}")).status_code == 200


async def test_a_form_without_the_csrf_token_is_refused(person):
    supplier = await person(Role.supplier)
    rid = await upload(supplier, await new_party(Role.core_firm))
    missing = await supplier.client.post(f"/web/receivables/{rid}/cancel", data={"reason": "x"})
    assert missing.status_code == 403
    assert "CSRF" in missing.text
    forged = await supplier.client.post(
        f"/web/receivables/{rid}/cancel", data={"reason": "x", "csrf_token": "A" * 43}
    )
    assert forged.status_code == 403
    page = await supplier.client.get(f"/web/receivables/{rid}")
    assert 'data-axis="confirmation" data-state="pending"' in page.text  # nothing happened


async def test_csrf_token_of_another_session_is_refused(person):
    supplier = await person(Role.supplier)
    rid = await upload(supplier, await new_party(Role.core_firm))
    second = await person(party=supplier.party)  # same organisation, another session
    supplier.client.cookies.set("qilian_csrf", second.csrf)  # a valid pair, of another session
    crossed = await supplier.client.post(
        f"/web/receivables/{rid}/cancel", data={"reason": "x", "csrf_token": second.csrf}
    )
    assert crossed.status_code == 403


async def test_cancel_with_an_empty_reason_shows_the_error_next_to_the_field(person):
    supplier = await person(Role.supplier)
    rid = await upload(supplier, await new_party(Role.core_firm))
    response = await supplier.post(f"/web/receivables/{rid}/cancel", {"reason": ""})
    assert response.status_code == 422
    assert field_error(response.text, "reason")
    done = await supplier.post(f"/web/receivables/{rid}/cancel", {"reason": "sent by mistake"})
    assert done.status_code == 303
    page = await supplier.client.get(done.headers["location"])
    assert 'data-axis="confirmation" data-state="cancelled"' in page.text


# ---------------------------------------------------------------- core firm and vouchers


async def confirmed_for(person: Login, supplier: Person) -> tuple[Person, str]:
    core = await person(Role.core_firm)
    rid = await upload(supplier, core.party, payable="1000.00")
    response = await core.post(f"/web/receivables/{rid}/confirm", {"back": "queue"})
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/web/confirmations")
    return core, rid


async def test_queue_confirm_reject_and_bulk_confirm(person):
    supplier = await person(Role.supplier)
    core = await person(Role.core_firm)
    ids = [await upload(supplier, core.party) for _ in range(4)]
    queue = await core.client.get("/web/confirmations")
    for rid in ids:
        assert f'value="{rid}"' in queue.text
    no_reason = await core.post(f"/web/receivables/{ids[0]}/reject", {"reason": ""})
    assert no_reason.status_code == 422
    assert field_error(no_reason.text, "reason")
    rejected = await core.post(f"/web/receivables/{ids[0]}/reject", {"reason": "not delivered"})
    assert rejected.status_code == 303
    bulk = await core.client.post(
        "/web/confirmations/bulk?lang=en",
        data={"csrf_token": core.csrf, "receivable_id": ids[:3]},
    )
    assert bulk.status_code == 200
    statuses = dict(re.findall(r'<li data-id="([^"]+)" data-status="(\d+)"', bulk.text))
    assert statuses == {ids[0]: "409", ids[1]: "200", ids[2]: "200"}
    assert "2 confirmed, 1 refused." in text_of(bulk.text)
    nothing = await core.post("/web/confirmations/bulk?lang=en")
    assert nothing.status_code == 422
    assert field_error(nothing.text, "receivable_id") == "Select at least one payable."
    everything = await core.post("/web/confirmations/bulk", {"all_pending": "true"})
    assert dict(re.findall(r'<li data-id="([^"]+)" data-status="(\d+)"', everything.text)) == {
        ids[3]: "200"
    }


async def test_supplier_may_not_confirm_and_core_firm_may_not_split(person):
    supplier = await person(Role.supplier)
    core, rid = await confirmed_for(person, supplier)
    assert (await supplier.post(f"/web/receivables/{rid}/confirm")).status_code == 403
    assert (await core.post(f"/web/receivables/{rid}/split", {"parts": "1\n2"})).status_code == 403
    assert (await supplier.client.get("/web/confirmations")).status_code == 403


async def test_split_that_does_not_add_up_shows_the_error_next_to_the_amounts(person):
    supplier = await person(Role.supplier)
    _, rid = await confirmed_for(person, supplier)
    wrong = await supplier.post(f"/web/receivables/{rid}/split?lang=en", {"parts": "100\n200"})
    assert wrong.status_code in (409, 422)
    assert field_error(wrong.text, "parts")
    assert "100\n200" in wrong.text  # what was typed is kept
    malformed = await supplier.post(
        f"/web/receivables/{rid}/split?lang=zh-CN", {"parts": "12.3456\n1"}
    )
    assert malformed.status_code == 422
    assert field_error(malformed.text, "parts") == "请输入金额，例如 1250.50。"
    done = await supplier.post(f"/web/receivables/{rid}/split", {"parts": "400\n600"})
    assert done.status_code == 303
    page = await supplier.client.get(done.headers["location"])
    assert 'data-axis="holding" data-state="split"' in page.text


async def test_transfer_errors_go_to_their_field_and_the_core_firm_sees_the_lineage(person):
    supplier = await person(Role.supplier)
    core, rid = await confirmed_for(person, supplier)
    receiver = await new_party(Role.supplier)
    page = await supplier.client.get(f"/web/receivables/{rid}")
    assert f'value="{receiver.org.id}"' in page.text
    too_much = await supplier.post(
        f"/web/receivables/{rid}/transfer",
        {"to_organization_id": receiver.org.id, "amount": "5000.00"},
    )
    assert too_much.status_code == 422
    assert field_error(too_much.text, "amount")
    nobody = await supplier.post(
        f"/web/receivables/{rid}/transfer", {"to_organization_id": core.party.org.id}
    )
    assert nobody.status_code == 422
    assert field_error(nobody.text, "to_organization_id")
    done = await supplier.post(
        f"/web/receivables/{rid}/transfer", {"to_organization_id": receiver.org.id, "amount": "300"}
    )
    assert done.status_code == 303
    moved = re.search(r"part=(rcv_\w+)", done.headers["location"])
    assert moved
    part = moved.group(1)
    tree = await core.client.get(f"/web/receivables/{rid}/lineage")
    assert tree.status_code == 200
    assert f'data-id="{part}" data-tier="2"' in tree.text
    assert receiver.name in tree.text


async def test_payment_form_validation_and_the_payables_calendar(person):
    supplier = await person(Role.supplier)
    core, rid = await confirmed_for(person, supplier)
    calendar = await core.client.get("/web/payables?lang=en")
    assert f'data-id="{rid}"' in calendar.text
    assert "March 2026" in calendar.text
    bad = await core.post(
        f"/web/receivables/{rid}/payments?lang=en",
        {"amount": "ten", "paid_at": "2026-03-01", "reference": "T1"},
    )
    assert bad.status_code == 422
    assert field_error(bad.text, "amount") == "Enter an amount such as 1250.50."
    assert not field_error(bad.text, "reference")
    no_date = await core.post(
        f"/web/receivables/{rid}/payments", {"amount": "10", "paid_at": "", "reference": "T1"}
    )
    assert no_date.status_code == 422
    assert field_error(no_date.text, "paid_at")
    paid = await core.post(
        f"/web/receivables/{rid}/payments",
        {"amount": "1000.00", "paid_at": "2026-03-01", "reference": "T1"},
    )
    assert paid.status_code == 303
    page = await core.client.get(paid.headers["location"])
    assert 'data-axis="settlement" data-state="paid"' in page.text
    assert f'data-id="{rid}"' not in (await core.client.get("/web/payables")).text


async def test_auditor_never_writes_through_the_pages(person):
    supplier = await person(Role.supplier)
    _, rid = await confirmed_for(person, supplier)
    auditor = await person(Role.auditor)
    response = await auditor.post(f"/web/receivables/{rid}/split", {"parts": "1\n999"})
    assert response.status_code == 403
