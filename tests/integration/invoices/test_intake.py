"""``POST /v1/invoices`` and ``POST /v1/invoices/parse`` on the real database: every rule of
intake, the created receivable and its event (which the ledger accepts), originals in the blob
store, and what another organisation is told."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text

from qilian.kit import db
from qilian.kit.outbox import OutboxEvent
from services.api.organizations.models import Role
from services.ledger.anchoring.service import validate_payload
from tests.integration.invoices.intake_helpers import (
    failing_vat,
    invoice_number,
    json_bytes,
    json_invoice,
    new_party,
    token,
    ubl,
)

XML = {"content-type": "application/xml"}


async def upload(http: Any, headers: dict[str, str], data: bytes, name: str = "inv.xml") -> Any:
    return await http.post("/v1/invoices", files={"file": (name, data)}, headers=headers)


@pytest.fixture
async def world(db_engine: None) -> dict[str, Any]:
    supplier = await new_party(Role.supplier)
    core = await new_party(Role.core_firm)
    return {"supplier": supplier, "core": core}


async def test_upload_creates_a_pending_receivable_with_its_created_event(http, app, world):
    supplier, core = world["supplier"], world["core"]
    number = invoice_number()
    data = ubl(supplier, core, number=number, payable="1234.50", total="1234.50")
    response = await upload(http, await token(http, supplier), data)
    assert response.status_code == 201, response.text
    body = response.json()
    receivable = body["receivable"]
    assert body["outcome"] == "created"
    assert body["invoice"]["invoice_number"] == number
    assert receivable["id"].startswith("rcv_")
    assert receivable["creditor_id"] == receivable["holder_id"] == supplier.org.id
    assert receivable["debtor_id"] == core.org.id
    assert receivable["face_value"] == {"amount": "1234.50", "currency": "EUR"}
    assert receivable["open_amount"] == {"amount": "1234.50", "currency": "EUR"}
    assert {
        axis: receivable["states"][axis]
        for axis in ("confirmation", "financing", "settlement", "dispute")
    } == {
        "confirmation": "pending",
        "financing": "unfinanced",
        "settlement": "open",
        "dispute": "none",
    }
    assert receivable["due_date"] == "2026-03-15"
    assert receivable["due_date_source"] == "invoice"
    assert receivable["event_seq"] == 1

    sha256 = body["invoice"]["sha256"]
    assert await app.state.blob_store.get(sha256) == data  # the original, content-addressed
    async with db.transaction() as session:
        row = (
            await session.execute(
                select(OutboxEvent).where(OutboxEvent.event_id == body["event_id"])
            )
        ).scalar_one()
    assert row.topic == "receivable.event"
    assert validate_payload(row.event_id, row.topic, row.payload) is None
    assert row.payload["seq"] == 1
    assert row.payload["type"] == "created"
    assert row.payload["receivable_id"] == receivable["id"]
    assert row.payload["data"]["sha256"] == sha256
    assert row.payload["data"]["face_value"] == {"amount": "1234.50", "currency": "EUR"}


async def test_json_body_upload_is_accepted(http, world):
    supplier, core = world["supplier"], world["core"]
    body = json_invoice(supplier, core)
    response = await http.post(
        "/v1/invoices",
        content=json_bytes(body),
        headers={**await token(http, supplier), "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["receivable"]["face_value"] == {"amount": "1130.00", "currency": "CNY"}


async def test_parse_is_a_dry_run_with_business_findings_as_warnings(http, world):
    supplier = world["supplier"]
    stranger = await new_party(Role.supplier)  # registered, but not a core firm
    data = ubl(supplier, stranger, number=invoice_number())
    headers = await token(http, supplier)
    response = await http.post(
        "/v1/invoices/parse", files={"file": ("x.xml", data)}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    codes = {w["code"] for w in body["warnings"]}
    assert "buyer_not_core_firm" in codes
    assert body["payable_amount"] == "119.00"
    assert body["format"] == "ubl_invoice"
    async with db.transaction() as session:
        stored = await session.execute(
            text("SELECT count(*) FROM platform.invoices WHERE sha256 = :s"),
            {"s": body["sha256"]},
        )
        assert stored.scalar() == 0


async def test_parse_refuses_unreadable_documents_with_parser_statuses(http, world):
    headers = await token(http, world["supplier"])
    unknown = await http.post(
        "/v1/invoices/parse", files={"file": ("a.bin", b"\x00\x01hello")}, headers=headers
    )
    assert unknown.status_code == 415
    assert unknown.headers["content-type"] == "application/problem+json"
    malformed = await http.post(
        "/v1/invoices/parse",
        files={"file": ("a.xml", b"<Invoice><oops></Invoice>")},
        headers=headers,
    )
    assert malformed.status_code == 422
    assert malformed.json()["reason"] == "xml_malformed"
    big = await http.post(
        "/v1/invoices/parse", content=b"<" + b" " * (21 * 1024 * 1024), headers={**headers, **XML}
    )
    assert big.status_code == 413


async def refused(http: Any, headers: dict[str, str], data: bytes) -> dict[str, Any]:
    response = await upload(http, headers, data)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_uploader_must_be_the_seller(http, world):
    supplier, core = world["supplier"], world["core"]
    other = await new_party(Role.supplier)
    body = await refused(
        http, await token(http, other), ubl(supplier, core, number=invoice_number())
    )
    assert body["reason"] == "uploader_not_seller"


async def test_named_payee_may_upload(http, world):
    supplier, core = world["supplier"], world["core"]
    factor_like = await new_party(Role.supplier)
    data = ubl(supplier, core, number=invoice_number(), payee=factor_like.name.upper())
    response = await upload(http, await token(http, factor_like), data)
    assert response.status_code == 201, response.text
    assert response.json()["receivable"]["creditor_id"] == factor_like.org.id


async def test_buyer_must_be_a_registered_core_firm(http, world):
    supplier = world["supplier"]
    headers = await token(http, supplier)
    unregistered = await new_party(Role.supplier)
    body = await refused(http, headers, ubl(supplier, unregistered, number=invoice_number()))
    assert body["reason"] == "buyer_not_core_firm"
    ghost = type(unregistered)(unregistered.org, "DE000000001", "nobody")
    body = await refused(http, headers, ubl(supplier, ghost, number=invoice_number()))
    assert body["reason"] == "buyer_not_registered"


async def test_amount_due_must_be_positive(http, world):
    supplier, core = world["supplier"], world["core"]
    data = ubl(
        supplier, core, number=invoice_number(), payable="0.00", prepaid="119.00", total="119.00"
    )
    body = await refused(http, await token(http, supplier), data)
    assert body["reason"] == "amount_not_positive"


async def test_due_date_not_before_issue_and_within_max_term(http, world):
    supplier, core = world["supplier"], world["core"]
    headers = await token(http, supplier)
    before = ubl(supplier, core, number=invoice_number(), issue="2026-03-01", due="2026-02-01")
    assert (await refused(http, headers, before))["reason"] == "due_before_issue"
    too_long = ubl(supplier, core, number=invoice_number(), issue="2026-01-01", due="2026-07-01")
    assert (await refused(http, headers, too_long))["reason"] == "term_too_long"
    exactly = ubl(supplier, core, number=invoice_number(), issue="2026-01-01", due="2026-06-30")
    assert (await upload(http, headers, exactly)).status_code == 201


async def test_due_date_from_payment_terms_else_refused(http, world):
    supplier, core = world["supplier"], world["core"]
    headers = {**await token(http, supplier), "content-type": "application/json"}
    no_due = json_invoice(supplier, core, due_date=None)
    response = await http.post("/v1/invoices", content=json_bytes(no_due), headers=headers)
    assert response.status_code == 422
    assert response.json()["reason"] == "due_date_missing"

    core_with_terms = await new_party(Role.core_firm, payment_terms_days=60)
    no_due = json_invoice(supplier, core_with_terms, due_date=None, issue_date="2026-02-01")
    response = await http.post("/v1/invoices", content=json_bytes(no_due), headers=headers)
    assert response.status_code == 201, response.text
    receivable = response.json()["receivable"]
    assert receivable["due_date"] == "2026-04-02"
    assert receivable["due_date_source"] == "payment_terms"


async def test_core_firm_sets_its_own_payment_terms(http, world):
    core = world["core"]
    response = await http.put(
        f"/v1/core-firms/{core.org.id}/payment-terms",
        json={"payment_terms_days": 45},
        headers=await token(http, core),
    )
    assert response.status_code == 200
    supplier = world["supplier"]
    body = json_invoice(supplier, core, due_date=None, issue_date="2026-02-01")
    created = await http.post(
        "/v1/invoices",
        content=json_bytes(body),
        headers={**await token(http, supplier), "content-type": "application/json"},
    )
    assert created.json()["receivable"]["due_date"] == "2026-03-18"


async def test_tax_id_checksum_failure_is_a_warning_not_a_refusal(http, world):
    supplier = await new_party(Role.supplier, tax_id=failing_vat())
    core = world["core"]
    response = await upload(
        http, await token(http, supplier), ubl(supplier, core, number=invoice_number())
    )
    assert response.status_code == 201
    codes = {w["code"] for w in response.json()["invoice"]["warnings"]}
    assert "tax_id_checksum" in codes


async def test_only_suppliers_upload(http, world):
    bank = await new_party(Role.bank)
    response = await upload(http, await token(http, bank), b"<x/>")
    assert response.status_code == 403


async def test_credit_note_dilutes_the_referenced_receivable(http, world):
    supplier, core = world["supplier"], world["core"]
    headers = {**await token(http, supplier), "content-type": "application/json"}
    original = json_invoice(supplier, core, payable_amount="1000.00", total_amount="1000.00")
    created = await http.post("/v1/invoices", content=json_bytes(original), headers=headers)
    receivable_id = created.json()["receivable"]["id"]

    credit = json_invoice(
        supplier,
        core,
        kind="credit_note",
        due_date=None,
        payable_amount="250.00",
        total_amount="250.00",
        preceding_invoice=f" {original['invoice_number'].lower()} ",
    )
    response = await http.post("/v1/invoices", content=json_bytes(credit), headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["outcome"] == "diluted"
    assert body["receivable"]["id"] == receivable_id
    assert body["receivable"]["open_amount"] == {"amount": "750.00", "currency": "CNY"}
    assert body["receivable"]["face_value"] == {"amount": "1000.00", "currency": "CNY"}
    assert body["receivable"]["event_seq"] == 2

    too_much = json_invoice(
        supplier,
        core,
        kind="credit_note",
        due_date=None,
        payable_amount="900.00",
        total_amount="900.00",
        preceding_invoice=original["invoice_number"],
    )
    response = await http.post("/v1/invoices", content=json_bytes(too_much), headers=headers)
    assert response.status_code == 409
    assert response.json()["reason"] == "credit_note_exceeds_open_amount"


async def test_credit_note_without_a_matching_receivable_is_refused(http, world):
    supplier, core = world["supplier"], world["core"]
    headers = {**await token(http, supplier), "content-type": "application/json"}
    unreferenced = json_invoice(supplier, core, kind="credit_note", due_date=None)
    response = await http.post("/v1/invoices", content=json_bytes(unreferenced), headers=headers)
    assert response.json()["reason"] == "credit_note_unreferenced"
    unmatched = json_invoice(
        supplier, core, kind="credit_note", due_date=None, preceding_invoice="NO-SUCH-INVOICE"
    )
    response = await http.post("/v1/invoices", content=json_bytes(unmatched), headers=headers)
    assert response.status_code == 422
    assert response.json()["reason"] == "credit_note_unmatched"
