"""Parsing rules on invoices built in code: format from content, the hardening caps, ZIP/OFD
traps, Chinese red-letter invoices, the CSV and JSON schemas, and how refusals render."""

from __future__ import annotations

import io
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import pytest

from qilian.kit.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from qilian.kit.money import Money
from services.api.invoices.parsing import (
    DocumentKind,
    InvoiceFormat,
    InvoiceParseError,
    Limits,
    detect,
    iter_csv,
    iter_ndjson,
    parse,
)
from services.api.invoices.parsing.errors import refusal

from .samples import cii_invoice, ofd_zip, shudian_invoice, ubl_invoice

MiB = 1024 * 1024


def refused(data: bytes, **kwargs) -> InvoiceParseError:
    with pytest.raises(InvoiceParseError) as caught:
        parse(data, **kwargs)
    return caught.value


# --- the normalised model -------------------------------------------------------------------


def test_ubl_invoice_maps_to_the_normalised_fields() -> None:
    invoice = parse(ubl_invoice(payee="Factor Bank AG", prepaid="19.00", payable="100.00"))
    assert invoice.format is InvoiceFormat.UBL_INVOICE
    assert invoice.kind is DocumentKind.INVOICE
    assert invoice.invoice_number == "INV-1"
    assert invoice.type_code == "380"
    assert invoice.issue_date == date(2026, 1, 15)
    assert invoice.due_date == date(2026, 3, 15)
    assert invoice.currency == "EUR"
    assert invoice.seller.name == "Seller GmbH"
    assert invoice.seller.tax_id == "DE123456788"
    assert invoice.seller.legal_id == "HRB 1"
    assert invoice.buyer.tax_id == "DE987654328"
    assert invoice.total_amount == Decimal("119.00")
    assert invoice.prepaid_amount == Decimal("19.00")
    assert invoice.payable_amount == Decimal("100.00")
    assert invoice.tax_amount == Decimal("19.00")
    assert invoice.payee == "Factor Bank AG"
    assert invoice.payment_account == "DE02120300000000202051"
    assert invoice.money(invoice.payable_amount) == Money(10000, "EUR")
    body = invoice.to_json()
    assert body["payable_amount"] == "100.00"
    assert body["seller"]["tax_id"] == "DE123456788"
    assert body["issue_date"] == "2026-01-15"


def test_cii_and_ubl_of_one_invoice_agree() -> None:
    ubl = parse(ubl_invoice())
    cii = parse(cii_invoice())
    for name in ("invoice_number", "issue_date", "due_date", "currency", "payable_amount"):
        assert getattr(ubl, name) == getattr(cii, name), name
    assert ubl.seller.tax_id == cii.seller.tax_id


@pytest.mark.parametrize(("type_code", "payable"), [("381", "119.00"), ("380", "-119.00")])
def test_credit_type_codes_and_negative_invoices_are_credit_notes(
    type_code: str, payable: str
) -> None:
    invoice = parse(ubl_invoice(type_code=type_code, payable=payable, total=payable))
    assert invoice.kind is DocumentKind.CREDIT_NOTE
    assert str(invoice.payable_amount) == payable


def test_due_date_before_issue_date_is_a_warning_not_a_refusal() -> None:
    invoice = parse(ubl_invoice(issue="2026-03-01", due="2026-02-01"))
    assert [w.code for w in invoice.warnings] == ["due_before_issue"]


def test_tax_id_checksum_failure_is_a_warning() -> None:
    assert parse(ubl_invoice()).warnings == ()
    invoice = parse(ubl_invoice(seller_vat="DE123456789"))
    assert [(w.code, w.field) for w in invoice.warnings] == [
        (
            "tax_id_checksum",
            "/Invoice/cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme"
            "[normalize-space(cac:TaxScheme/cbc:ID)='VAT']/cbc:CompanyID",
        )
    ]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"issue": "2026-02-30"}, "invalid_date"),
        ({"issue": "15.01.2026"}, "invalid_date"),
        ({"currency": "euro"}, "invalid_currency"),
        ({"number": ""}, "missing_field"),
        ({"seller": "Evil\u202egnp.exe"}, "forbidden_character"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(kwargs: dict[str, str], reason: str) -> None:
    error = refused(ubl_invoice(**kwargs))
    assert error.reason == reason
    assert error.status == 422
    assert error.field


# --- format from content --------------------------------------------------------------------


def test_format_comes_from_content_not_the_declared_type() -> None:
    invoice = parse(ubl_invoice(), content_type="application/pdf")
    assert invoice.format is InvoiceFormat.UBL_INVOICE
    assert "content_type_mismatch" in {w.code for w in invoice.warnings}
    assert detect(cii_invoice(), "text/csv") is InvoiceFormat.CII
    assert detect(shudian_invoice()) is InvoiceFormat.SHUDIAN_XML


@pytest.mark.parametrize(
    ("data", "reason", "status"),
    [
        (b"", "empty_document", 422),
        (b"   \n", "empty_document", 422),
        (b"\x89PNG\r\n\x1a\n....", "unknown_format", 415),
        (b"GIF89a", "unknown_format", 415),
        (b"<html><body>hi</body></html>", "unknown_root_element", 415),
        (b"%PDF-1.7\n%%EOF", "pdf_invalid", 422),
    ],
)
def test_unknown_and_empty_inputs_are_refused(data: bytes, reason: str, status: int) -> None:
    error = refused(data)
    assert (error.reason, error.status) == (reason, status)


def test_utf16_documents_parse_and_utf32_or_utf7_are_refused() -> None:
    text = ubl_invoice().decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert parse(b"\xff\xfe" + text.encode("utf-16-le")).invoice_number == "INV-1"
    assert refused(b"\xff\xfe\x00\x00" + text.encode("utf-32-le")).reason == (
        "unsupported_encoding"
    )
    utf7 = ubl_invoice().replace(b'encoding="UTF-8"', b'encoding="UTF-7"')
    assert refused(utf7).reason == "unsupported_encoding"


# --- size and libxml2 limits ----------------------------------------------------------------


def test_size_is_capped_before_parsing() -> None:
    error = refused(ubl_invoice(), limits=Limits(max_upload_bytes=1000))
    assert (error.reason, error.status) == ("too_large", 413)
    assert isinstance(error, PayloadTooLarge)


def test_a_12_mb_text_node_is_refused_by_size_or_by_libxml2() -> None:
    big = ubl_invoice(seller="x" * (12 * MiB))
    assert refused(big).reason == "too_large"
    roomy = Limits(max_upload_bytes=64 * MiB, max_xml_bytes=64 * MiB)
    assert refused(big, limits=roomy).reason == "xml_limit_exceeded"


def test_a_20_mb_attribute_is_refused() -> None:
    attr = b' schemeID="' + b"A" * (20 * MiB) + b'"'
    big = ubl_invoice().replace(b"<cbc:ID>INV-1", b"<cbc:ID" + attr + b">INV-1", 1)
    roomy = Limits(max_upload_bytes=64 * MiB, max_xml_bytes=64 * MiB)
    assert refused(big, limits=roomy).reason in ("xml_limit_exceeded", "attribute_too_large")


# --- OFD / ZIP ------------------------------------------------------------------------------


def test_an_ofd_carrying_a_shudian_invoice_parses() -> None:
    data = ofd_zip({"Doc_0/Attachs/invoice.xml": shudian_invoice()})
    invoice = parse(data)
    assert invoice.format is InvoiceFormat.OFD_ZIP
    assert invoice.payable_amount == Decimal("113000.00")


@pytest.mark.parametrize(
    "name", ["../original_invoice.xml", "/etc/original_invoice.xml", "Doc_0\\..\\x.xml", "C:/x.xml"]
)
def test_zip_slip_paths_are_refused(name: str) -> None:
    error = refused(ofd_zip({name: shudian_invoice()}))
    assert error.reason == "zip_unsafe_path"


def test_zip_member_count_total_size_and_ratio_are_capped() -> None:
    many = ofd_zip({f"Doc_0/Res/{i}.xml": b"<a/>" for i in range(300)})
    assert refused(many).reason == "zip_too_many_members"
    bomb = ofd_zip({"Doc_0/Attachs/original_invoice.xml": b" " * (8 * MiB)})
    assert refused(bomb).reason == "zip_compression_ratio"
    stored = ofd_zip(
        {"Doc_0/Attachs/original_invoice.xml": shudian_invoice()}, compression=zipfile.ZIP_STORED
    )
    error = refused(stored, limits=Limits(max_zip_total_bytes=1000))
    assert (error.reason, error.status) == ("decompressed_too_large", 413)


def test_a_zip_that_is_not_an_ofd_and_an_ofd_without_invoice_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("invoice.xml", ubl_invoice())
    assert refused(buffer.getvalue()).status == 415
    assert refused(ofd_zip({"Doc_0/Document.xml": b"<x/>"})).reason == "ofd_no_invoice"


def test_an_ofd_with_two_different_invoices_is_ambiguous() -> None:
    data = ofd_zip(
        {
            "Doc_0/Attachs/a.xml": shudian_invoice(),
            "Doc_0/Attachs/b.xml": shudian_invoice(total="1.00"),
        }
    )
    assert refused(data).reason == "ofd_ambiguous_invoice"


# --- 数电票 ---------------------------------------------------------------------------------


def test_red_letter_shudian_is_a_negative_credit_note_naming_the_blue_invoice() -> None:
    invoice = parse(
        shudian_invoice(
            net="-10000.00",
            tax="-1300.00",
            total="-11300.00",
            words="（负数）壹万壹仟叁佰圆整",
            remark="被红冲蓝字数电发票号码：25999000000000000001 红字发票信息确认单编号：1",
        )
    )
    assert invoice.kind is DocumentKind.CREDIT_NOTE
    assert invoice.payable_amount == Decimal("-11300.00")
    assert invoice.preceding_invoice == "25999000000000000001"
    assert invoice.currency == "CNY"
    assert invoice.due_date is None
    assert invoice.warnings == ()


def test_shudian_words_that_disagree_with_the_sign_are_a_warning() -> None:
    invoice = parse(shudian_invoice(total="-113000.00"))
    assert "amount_words_mismatch" in {w.code for w in invoice.warnings}


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        ("2025-03-18", date(2025, 3, 18)),
        ("2025-03-18 16:05:42", date(2025, 3, 18)),
        ("2025-03-18T16:05:42", date(2025, 3, 18)),
        ("2025年3月18日", date(2025, 3, 18)),
        ("20250318", date(2025, 3, 18)),
    ],
)
def test_shudian_issue_time_forms(issued: str, expected: date) -> None:
    assert parse(shudian_invoice(issued=issued)).issue_date == expected


def test_shudian_unreadable_issue_time_is_refused() -> None:
    assert refused(shudian_invoice(issued="18/03/2025")).reason == "invalid_date"


# --- CSV and JSON ---------------------------------------------------------------------------

CSV_HEADER = (
    "invoice_number,issue_date,due_date,currency,seller_name,seller_tax_id,"
    "buyer_name,buyer_tax_id,total_amount,payable_amount\n"
)


def test_csv_invoice_parses() -> None:
    data = CSV_HEADER + "C-1,2026-01-15,2026-03-15,CNY,甲公司,,乙集团,,113000.00,113000.00\n"
    invoice = parse(("\ufeff" + data).encode())
    assert invoice.format is InvoiceFormat.CSV
    assert invoice.payable_amount == Decimal("113000.00")
    assert invoice.seller.name == "甲公司"


def test_csv_rows_are_independent_in_bulk() -> None:
    data = (
        CSV_HEADER
        + "C-1,2026-01-15,,EUR,S,,B,,10.00,10.00\n"
        + "C-2,2026-01-15,,EUR,S,,B,,10,00,10.00\n"
        + "C-3,2026-01-15,,EUR,S,,B,,1e3,1e3\n"
        + "C-4,2026-01-16,,EUR,S,,B,,5.00,5.00\n"
    )
    with pytest.raises(InvoiceParseError) as caught:
        list(iter_csv(data.encode()))  # a row with too many cells breaks the file
    assert caught.value.reason == "csv_invalid"
    good = CSV_HEADER + "C-1,2026-01-15,,EUR,S,,B,,10.00,10.00\nC-3,2026-01-15,,EUR,S,,B,,1e3,1e3\n"
    results = list(iter_csv(good.encode()))
    assert not isinstance(results[0], InvoiceParseError)
    assert isinstance(results[1], InvoiceParseError)
    assert results[1].reason == "invalid_amount"
    assert results[1].field == "row 3: total_amount"


def test_csv_with_unknown_columns_or_two_rows_is_refused_for_a_single_parse() -> None:
    assert refused(b"invoice_number,colour\n1,red\n").reason == "csv_invalid"
    two = CSV_HEADER + "A,2026-01-15,,EUR,S,,B,,1,1\nB,2026-01-15,,EUR,S,,B,,1,1\n"
    assert refused(two.encode()).reason == "csv_invalid"


def test_json_invoice_parses_and_numbers_are_refused() -> None:
    body = (
        '{"invoice_number": "J-1", "issue_date": "2026-01-15", "currency": "EUR",'
        ' "seller": {"name": "S", "tax_id": "DE123456789"}, "buyer": {"name": "B"},'
        ' "payable_amount": "10.10"}'
    )
    invoice = parse(body.encode())
    assert invoice.format is InvoiceFormat.JSON
    assert invoice.payable_amount == Decimal("10.10")
    assert invoice.seller.tax_id == "DE123456789"
    error = refused(body.replace('"10.10"', "10.10").encode())
    assert (error.reason, error.field) == ("json_invalid", "payable_amount")
    assert refused(b'{"invoice_number": "1", "bogus": "x"}').reason == "json_invalid"
    assert refused(b'{"invoice_number": NaN}').reason == "json_invalid"


def test_ndjson_yields_one_result_per_line() -> None:
    good = (
        b'{"invoice_number":"1","issue_date":"2026-01-15","currency":"EUR",'
        b'"seller":{"name":"S"},"payable_amount":"1.00"}'
    )
    results = list(iter_ndjson(good + b"\n\n" + b"{nope\n" + good + b"\n"))
    assert [isinstance(r, InvoiceParseError) for r in results] == [False, True, False]


# --- refusals as problem documents ----------------------------------------------------------


def test_refusals_are_the_kit_errors_with_reason_and_field() -> None:
    error = refused(ubl_invoice(payable="250,33"))
    assert isinstance(error, InvalidInput)
    problem = error.to_problem("/v1/invoices/parse")
    assert problem["status"] == 422
    assert problem["reason"] == "invalid_amount"
    assert problem["field"] == "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount"
    assert isinstance(refusal("unknown_format", "x"), UnsupportedMediaType)
    with pytest.raises(ValueError, match="unknown invoice refusal reason"):
        refusal("no_such_reason", "x")


def test_parsing_is_safe_across_threads() -> None:
    documents = [
        ubl_invoice(number=f"T-{i}", payable=f"{i}.00", total=f"{i}.00") for i in range(1, 201)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parsed = list(pool.map(parse, documents))
    assert [p.invoice_number for p in parsed] == [f"T-{i}" for i in range(1, 201)]
    assert [p.payable_amount for p in parsed] == [Decimal(i) for i in range(1, 201)]


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: b"\xff\xfe" + text.encode("utf-16-le"),
        lambda text: b"\xfe\xff" + text.encode("utf-16-be"),
        lambda text: text.encode("utf-16-le"),
        lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
    ],
    ids=["utf16le-bom", "utf16be-bom", "utf16le-no-bom", "utf8-bom"],
)
def test_a_doctype_is_refused_before_parsing_in_any_encoding(encode) -> None:
    body = ubl_invoice().decode("utf-8").split("\n", 1)[1]
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>\n<!-- a long licence comment -->\n'
        '<!DOCTYPE Invoice [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n' + body
    )
    data = encode(text)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data.replace(b'encoding="UTF-16"', b'encoding="UTF-8"')
    assert refused(data).reason == "doctype_forbidden"


async def test_the_error_handler_renders_a_refusal_as_problem_json() -> None:
    import httpx
    from fastapi import FastAPI

    from qilian.kit.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/parse")
    def _parse() -> dict[str, str]:
        parse(ubl_invoice(payable="2.5033E2"))
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/parse")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["reason"] == "invalid_amount"
    assert body["field"] == "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount"
    assert body["type"].endswith("/invalid-input")
