"""The corpus README's "cases worth a test each", read as the business layer will need them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.api.invoices.parsing import DocumentKind, InvoiceFormat, ParsedInvoice, parse

from .manifest import CORPUS, corpus_available

pytestmark = pytest.mark.skipif(
    not corpus_available(),
    reason="invoice corpus ../shared/conformance/invoices not present next to the repository",
)


def load(name: str) -> ParsedInvoice:
    return parse((CORPUS / name).read_bytes())


def test_factoring_invoice_names_the_factor_as_payee() -> None:
    invoice = load("en16931/BIS_Billing_30-Factoring.xml")
    assert invoice.seller.name == "QVK Montage AB"
    assert invoice.payee == "Likviditet o. Finans AB"
    assert invoice.payment_account == "12345678"


@pytest.mark.parametrize(
    ("name", "payable"),
    [
        ("en16931/BIS_Billing_30-Kreditering_med_kreditnota.xml", "10000"),  # CreditNote root
        ("en16931/ubl-tc434-creditnote1.xml", "100.11"),  # CreditNote, type 381
        ("en16931/BIS_Billing_30-Kreditering_med_negativ_faktura.xml", "-10000"),  # negative 380
        ("mustangproject/validAvoir_FR_type380_BASICWL.pdf", "-233.47"),  # Factur-X, negative 380
        ("china/synthetic/shudian_special_vat_red_letter.xml", "-11300.00"),  # 红字
    ],
)
def test_every_credit_note_form_is_a_credit_note(name: str, payable: str) -> None:
    invoice = load(name)
    assert invoice.kind is DocumentKind.CREDIT_NOTE
    assert str(invoice.payable_amount) == payable


def test_credit_note_rounding_is_not_reported_as_inconsistent() -> None:
    invoice = load("en16931/BIS_Billing_30-Kreditering_med_kreditnota.xml")
    assert invoice.rounding_amount == Decimal("-0.1")
    assert "totals_inconsistent" not in {w.code for w in invoice.warnings}


@pytest.mark.parametrize("name", ["en16931/XRechnung-O.xml", "en16931/CII_business_example_02.xml"])
def test_due_date_before_issue_date_parses_with_a_warning(name: str) -> None:
    invoice = load(name)
    assert invoice.due_date is not None
    assert invoice.due_date < invoice.issue_date
    assert "due_before_issue" in {w.code for w in invoice.warnings}


def test_usd_invoice_with_sek_tax_currency() -> None:
    invoice = load("en16931/BIS_Billing_30-Valutor_i_faktura.xml")
    assert (invoice.currency, invoice.tax_currency) == ("USD", "SEK")
    assert invoice.payable_amount == Decimal("115000")


def test_same_number_different_dates_are_two_invoices() -> None:
    a = load("mustangproject/EN16931_Einfach.pdf")
    b = load("mustangproject/Factur-X_basic.xml")
    assert a.invoice_number == b.invoice_number == "471102"
    assert a.issue_date == b.issue_date == date(2024, 11, 15)
    assert a.payable_amount != b.payable_amount


def test_a_pdf_and_its_embedded_xml_read_the_same() -> None:
    pdf = load("akretion-factur-x/invoice_EN16931.pdf")
    xml = load("_extracted/akretion-factur-x__invoice_EN16931__factur-x.xml")
    assert pdf.format is InvoiceFormat.FACTURX_PDF
    assert pdf.syntax == xml.syntax == "cii-d16b"
    assert pdf.to_json() | {"format": None} == xml.to_json() | {"format": None}


def test_zugferd_1_pdf_is_read() -> None:
    invoice = load("mustangproject/zugferd_invoice.pdf")
    assert invoice.syntax == "zugferd-1.0"
    assert invoice.payable_amount == Decimal("1005.55")


def test_the_ofd_amount_is_the_tax_inclusive_total_not_customdatas() -> None:
    invoice = load("china/synthetic/legacy_vat_einvoice_structure_only.ofd")
    assert invoice.payable_amount == Decimal("11300.00")  # CustomDatas 合计金额 says 10000.00
    assert invoice.tax_exclusive_amount == Decimal("10000.00")
    assert invoice.invoice_number == "099999999999-00000001"
    assert invoice.payment_bank == "测试银行示例支行"
