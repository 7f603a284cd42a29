"""The same invoice never becomes two receivables: whoever uploads it, however it is encoded
(UBL, CII, JSON, a Factur-X PDF of the same invoice), and however many upload it at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from qilian.kit import db
from services.api.organizations.models import Role
from tests.integration.auth.conftest import client_for
from tests.integration.invoices.intake_helpers import (
    CORPUS,
    cii_invoice,
    invoice_number,
    json_bytes,
    json_invoice,
    new_party,
    token,
    ubl,
)


async def upload(http: Any, headers: dict[str, str], data: bytes, name: str = "inv") -> Any:
    return await http.post("/v1/invoices", files={"file": (name, data)}, headers=headers)


async def test_second_upload_is_409_naming_the_existing_receivable(http):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    headers = await token(http, supplier)
    data = ubl(supplier, core, number=invoice_number())
    first = await upload(http, headers, data)
    assert first.status_code == 201
    again = await upload(http, headers, data)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    problem = again.json()
    assert problem["reason"] == "duplicate"
    assert problem["receivable_id"] == first.json()["receivable"]["id"]


async def test_duplicate_by_a_non_party_does_not_reveal_the_receivable(http):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    number = invoice_number()
    first = await upload(http, await token(http, supplier), ubl(supplier, core, number=number))
    assert first.status_code == 201
    # another supplier named as payee passes the uploader rule, but is no party of the receivable
    other = await new_party(Role.supplier)
    data = ubl(supplier, core, number=number, payee=other.name)
    again = await upload(http, await token(http, other), data)
    assert again.status_code == 409
    problem = again.json()
    assert "receivable_id" not in problem
    assert first.json()["receivable"]["id"] not in again.text
    assert supplier.org.id not in again.text


async def test_reencoded_invoice_is_a_duplicate_ubl_cii_json(http):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    headers = await token(http, supplier)
    number = invoice_number()
    first = await upload(
        http,
        headers,
        ubl(supplier, core, number=number, issue="2026-01-15", due="2026-03-15", payable="119.00"),
    )
    assert first.status_code == 201
    receivable_id = first.json()["receivable"]["id"]
    # the same invoice as CII: spaced tax ids, lower-case number, "119.0" instead of "119.00"
    spaced_seller = " ".join(supplier.tax_id[i : i + 3] for i in range(0, len(supplier.tax_id), 3))
    cii = cii_invoice(
        spaced_seller,
        core.tax_id.lower(),
        number=f" {number.lower()} ",
        issue="2026-01-15",
        due="2026-03-15",
        payable="119.0",
    )
    again = await upload(http, headers, cii)
    assert again.status_code == 409, again.text
    assert again.json()["receivable_id"] == receivable_id
    as_json = json_invoice(
        supplier,
        core,
        number=number,
        issue_date="2026-01-15",
        due_date="2026-03-15",
        currency="EUR",
        payable_amount="119",
        total_amount="119",
    )
    third = await http.post(
        "/v1/invoices",
        content=json_bytes(as_json),
        headers={**headers, "content-type": "application/json"},
    )
    assert third.status_code == 409
    assert third.json()["receivable_id"] == receivable_id


@pytest.mark.skipif(not CORPUS.is_dir(), reason="invoice corpus not next to the repository")
async def test_corpus_cii_and_its_facturx_pdf_are_one_invoice(http):
    # akretion factur-x: the same invoice F20260023 as CII XML and as a Factur-X PDF
    seller = await new_party(Role.supplier, tax_id="FR11123456782")
    buyer = await new_party(Role.core_firm, tax_id="FR05987654321")
    headers = await token(http, seller)
    xml = (CORPUS / "akretion-factur-x" / "factur-x-en16931.xml").read_bytes()
    pdf = (CORPUS / "akretion-factur-x" / "invoice_EN16931.pdf").read_bytes()
    first = await upload(http, headers, pdf, "invoice.pdf")
    assert first.status_code == 201, first.text
    assert first.json()["invoice"]["format"] == "facturx_pdf"
    assert first.json()["receivable"]["debtor_id"] == buyer.org.id
    again = await upload(http, headers, xml, "invoice.xml")
    assert again.status_code == 409, again.text
    assert again.json()["receivable_id"] == first.json()["receivable"]["id"]


async def test_fifty_concurrent_uploads_of_one_invoice_create_exactly_one(app, db_engine):
    supplier, core = await new_party(Role.supplier), await new_party(Role.core_firm)
    data = ubl(supplier, core, number=invoice_number())
    clients = [client_for(app) for _ in range(50)]
    try:
        headers = await token(clients[0], supplier)
        responses = await asyncio.gather(*(upload(c, headers, data) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 49, statuses
    winner = next(r for r in responses if r.status_code == 201).json()["receivable"]["id"]
    assert all(r.json()["receivable_id"] == winner for r in responses if r.status_code == 409)
    async with db.transaction() as session:
        count = await session.execute(
            text("SELECT count(*) FROM platform.receivables WHERE creditor_id = :o"),
            {"o": supplier.org.id},
        )
        assert count.scalar() == 1
