"""Shared by the invoice and receivable integration tests: organisations with real-looking tax
ids (unique per test, so tests never see each other's fingerprints), invoices in several formats,
an app whose blob store, ledger and import dispatcher the test controls."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from stdnum.eu import vat as eu_vat

from qilian.kit import db
from services.api.audit import service as audit
from services.api.auth import service as auth_service
from services.api.invoices import repository as invoices_repository
from services.api.organizations import service as org_service
from services.api.organizations.models import Cluster, OrganizationBase, Role
from tests.integration.auth.conftest import Org, bearer, get_token
from tests.unit.invoices.samples import ubl_invoice

__all__ = ["Party", "bearer", "cii_invoice", "json_invoice", "new_party", "ubl_invoice"]


@dataclass(frozen=True)
class Party:
    org: Org
    tax_id: str
    name: str


def random_vat(country: str = "DE") -> str:
    return country + "".join(random.choice("0123456789") for _ in range(9))


def failing_vat() -> str:
    """A fresh random German VAT id whose check digit is wrong (one in ten random ids is right)."""
    vat = random_vat()
    if eu_vat.is_valid(vat):
        vat = vat[:-1] + str((int(vat[-1]) + 1) % 10)
    assert not eu_vat.is_valid(vat)
    return vat


async def new_party(
    role: Role,
    *,
    tax_id: str | None = None,
    name: str | None = None,
    payment_terms_days: int | None = None,
) -> Party:
    """An organisation registered with ``tax_id`` (a fresh random VAT id by default)."""
    tax_id = tax_id or random_vat()
    name = name or f"{role.value} {uuid.uuid4().hex[:6]}"
    async with db.transaction() as session:
        org = await org_service.register(
            session,
            OrganizationBase(
                name=name,
                role=role,
                tax_id=tax_id,
                tax_scheme=f"TEST-{uuid.uuid4().hex[:8]}",
                cluster=Cluster.pv if role == Role.core_firm else None,
            ),
        )
        issued = await auth_service.issue_client(session, audit.SYSTEM, org.id)
        if payment_terms_days is not None:
            await invoices_repository.set_payment_terms(session, org.id, payment_terms_days)
    return Party(Org(org.id, role, issued.client_id, issued.client_secret), tax_id, name)


async def token(http: httpx.AsyncClient, party: Party) -> dict[str, str]:
    return bearer(await get_token(http, party.org))


def invoice_number() -> str:
    return f"INV-{uuid.uuid4().hex[:10].upper()}"


def ubl(
    seller: Party,
    buyer: Party,
    *,
    number: str,
    issue: str = "2026-01-15",
    due: str = "2026-03-15",
    payable: str = "119.00",
    currency: str = "EUR",
    **extra: Any,
) -> bytes:
    return ubl_invoice(
        number=number,
        issue=issue,
        due=due,
        seller_vat=seller.tax_id,
        buyer_vat=buyer.tax_id,
        payable=payable,
        total=extra.pop("total", payable),
        currency=currency,
        **extra,
    )


CII = """<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
 xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
 xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>
    <ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument><ram:ID>{number}</ram:ID><ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime>
      <udt:DateTimeString format="102">{issue}</udt:DateTimeString></ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:ApplicableHeaderTradeAgreement>
      <ram:SellerTradeParty><ram:Name>Seller</ram:Name>
        <ram:SpecifiedTaxRegistration>
          <ram:ID schemeID="VA">{seller}</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty><ram:Name>Buyer</ram:Name>
        <ram:SpecifiedTaxRegistration>
          <ram:ID schemeID="VA">{buyer}</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:BuyerTradeParty>
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime>
        <udt:DateTimeString format="102">{due}</udt:DateTimeString></ram:DueDateDateTime>
      </ram:SpecifiedTradePaymentTerms>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:TaxBasisTotalAmount>100.00</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">19.00</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>{payable}</ram:GrandTotalAmount>
        <ram:DuePayableAmount>{payable}</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"""


def cii_invoice(
    seller: str, buyer: str, *, number: str, issue: str, due: str, payable: str
) -> bytes:
    """A CII D16B invoice (dates as YYYY-MM-DD, written in format 102)."""
    return CII.format(
        number=number,
        issue=issue.replace("-", ""),
        due=due.replace("-", ""),
        seller=seller,
        buyer=buyer,
        payable=payable,
    ).encode()


def json_invoice(seller: Party, buyer: Party, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "invoice_number": fields.pop("number", invoice_number()),
        "issue_date": "2026-02-01",
        "due_date": "2026-04-01",
        "currency": "CNY",
        "seller": {"name": seller.name, "tax_id": seller.tax_id},
        "buyer": {"name": buyer.name, "tax_id": buyer.tax_id},
        "total_amount": "1130.00",
        "payable_amount": "1130.00",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "conformance" / "invoices"
