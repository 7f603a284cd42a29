"""Chinese VAT e-invoices: 数电票 ``EInvoice`` XML, the legacy ``original_invoice.xml`` (``fp:``
namespace) and the OFD package (GB/T 33190, a ZIP) that carries either.

Currency is always CNY; the formats have no due date and no payee. The amount due is 价税合计
(``TotalTax-includedAmount`` / ``TaxInclusiveTotalAmount``), never the tax-exclusive 合计金额
an OFD's ``CustomDatas`` also shows. A red-letter (红字) invoice has negative totals and is read
as a credit note referencing the blue invoice named in its remark.

OFD ZIPs are opened with caps on member count, total and per-member uncompressed size, compression
ratio, and member paths (absolute, ``..``, drive letters and backslashes are refused).
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Callable
from decimal import Decimal

from lxml import etree

from .errors import InvoiceParseError, refuse
from .fields import Paths, Reader
from .limits import Limits
from .model import DocumentKind, InvoiceFormat, Party
from .values import Draft, optional_amount, parse_chinese_date

FP_NS = "http://www.edrm.org.cn/schema/e-invoice/2019"
OFD_NS = "http://www.ofdspec.org/2016"

_NO_NS = Paths({})
_FP = Paths({"fp": FP_NS})
_OFD = Paths({"ofd": OFD_NS})

_RED_REMARK = re.compile(r"被红冲蓝字数电发票号码[：:]\s*([0-9]{20})")
_NEGATIVE_WORDS = ("（负数）", "(负数)", "负数")
_ACCOUNT_TAIL = re.compile(r"^(.*?)[\s　]*([0-9][0-9 \-]{4,})$")
_UNSAFE_NAME = re.compile(r"(^[/\\])|(^[A-Za-z]:)|\\|\x00")


def _words_sign_check(draft: Draft, words: str | None, total: Decimal | None, field: str) -> None:
    if words is None or total is None:
        return
    says_negative = words.startswith(_NEGATIVE_WORDS)
    if says_negative != (total < 0):
        draft.warn(
            "amount_words_mismatch",
            "the amount in words and the figure disagree on the sign",
            field,
        )


def parse_shudian(root: etree._Element, *, fmt: InvoiceFormat | None = None) -> Draft:
    """A 数电票 ``EInvoice`` document (root without namespace)."""
    reader = Reader(root, _NO_NS, "/EInvoice")
    basic = "EInvoiceData/BasicInformation"
    seller = "EInvoiceData/SellerInformation"
    buyer = "EInvoiceData/BuyerInformation"
    where = {
        "invoice_number": reader.where("TaxSupervisionInfo/InvoiceNumber"),
        "type_code": reader.where("Header/InherentLabel/GeneralOrSpecialVAT/LabelName"),
        "issue_date": reader.where("TaxSupervisionInfo/IssueTime"),
        "payable_amount": reader.where(f"{basic}/TotalTax-includedAmount"),
        "seller.name": reader.where(f"{seller}/SellerName"),
        "seller.tax_id": reader.where(f"{seller}/SellerIdNum"),
        "buyer.name": reader.where(f"{buyer}/BuyerName"),
        "buyer.tax_id": reader.where(f"{buyer}/BuyerIdNum"),
        "payment_accounts": reader.where(f"{seller}/SellerBankAccNum"),
        "payment_bank": reader.where(f"{seller}/SellerBankName"),
    }
    draft = Draft(format=fmt or InvoiceFormat.SHUDIAN_XML, syntax="shudian-einvoice", where=where)
    draft.currency = "CNY"
    tag = reader.one("Header/EInvoiceTag")
    version = reader.one("Header/Version")
    draft.profile = " ".join(v for v in (tag, f"v{version}" if version else None) if v) or None
    if tag is not None and not tag.startswith("SWEI"):
        draft.warn(
            "unknown_einvoice_tag", "EInvoiceTag does not start with SWEI", "Header/EInvoiceTag"
        )
    draft.invoice_number = reader.one("TaxSupervisionInfo/InvoiceNumber")
    eiid = reader.one("Header/EIid")
    if draft.invoice_number is None:
        draft.invoice_number = eiid
    elif eiid is not None and eiid != draft.invoice_number:
        draft.warn(
            "invoice_number_mismatch", "Header/EIid differs from InvoiceNumber", "Header/EIid"
        )
    draft.type_code = reader.one("Header/InherentLabel/GeneralOrSpecialVAT/LabelName")
    issued = reader.one("TaxSupervisionInfo/IssueTime")
    if issued is not None:
        draft.issue_date = parse_chinese_date(issued, field=where["issue_date"])
    draft.seller = Party(
        name=reader.one(f"{seller}/SellerName"), tax_id=reader.one(f"{seller}/SellerIdNum")
    )
    draft.buyer = Party(
        name=reader.one(f"{buyer}/BuyerName"), tax_id=reader.one(f"{buyer}/BuyerIdNum")
    )
    account = reader.one(f"{seller}/SellerBankAccNum")
    draft.payment_accounts = (account,) if account else ()
    draft.payment_bank = reader.one(f"{seller}/SellerBankName")
    total = reader.amount(f"{basic}/TotalTax-includedAmount")
    draft.total_amount = total
    draft.payable_amount = total
    draft.tax_exclusive_amount = reader.amount(f"{basic}/TotalAmWithoutTax")
    draft.tax_amount = reader.amount(f"{basic}/TotalTaxAm")
    words_path = f"{basic}/TotalTax-includedAmountInChinese"
    _words_sign_check(draft, reader.one(words_path), total, reader.where(words_path))
    remark = reader.one("EInvoiceData/AdditionalInformation/Remark") or ""
    originals = tuple(dict.fromkeys(_RED_REMARK.findall(remark)))
    draft.preceding_invoices = originals
    if total is not None and total < 0:
        draft.kind = DocumentKind.CREDIT_NOTE
        if not originals:
            draft.warn(
                "red_letter_without_original",
                "a red-letter invoice whose remark names no blue invoice",
                where["payable_amount"],
            )
    return draft


def parse_legacy(root: etree._Element, *, fmt: InvoiceFormat | None = None) -> Draft:
    """A legacy VAT e-invoice ``eInvoice`` (root without namespace, children in ``fp:``)."""
    reader = Reader(root, _FP, "/eInvoice")
    where = {
        "invoice_number": reader.where("fp:InvoiceNo"),
        "type_code": reader.where("fp:TypeCode"),
        "issue_date": reader.where("fp:IssueDate"),
        "payable_amount": reader.where("fp:TaxInclusiveTotalAmount"),
        "seller.name": reader.where("fp:Seller/fp:SellerName"),
        "seller.tax_id": reader.where("fp:Seller/fp:SellerTaxID"),
        "buyer.name": reader.where("fp:Buyer/fp:BuyerName"),
        "buyer.tax_id": reader.where("fp:Buyer/fp:BuyerTaxID"),
        "payment_accounts": reader.where("fp:Seller/fp:SellerFinancialAccount"),
    }
    draft = Draft(format=fmt or InvoiceFormat.OFD_XML, syntax="legacy-einvoice-fp", where=where)
    draft.currency = "CNY"
    draft.profile = root.get("Version")
    code = reader.one("fp:InvoiceCode")
    number = reader.one("fp:InvoiceNo")
    if number is not None:
        draft.invoice_number = f"{code}-{number}" if code else number
    draft.type_code = reader.one("fp:TypeCode")
    issued = reader.one("fp:IssueDate")
    if issued is not None:
        draft.issue_date = parse_chinese_date(issued, field=where["issue_date"])
    draft.seller = Party(
        name=reader.one("fp:Seller/fp:SellerName"), tax_id=reader.one("fp:Seller/fp:SellerTaxID")
    )
    draft.buyer = Party(
        name=reader.one("fp:Buyer/fp:BuyerName"), tax_id=reader.one("fp:Buyer/fp:BuyerTaxID")
    )
    account = reader.one("fp:Seller/fp:SellerFinancialAccount")
    if account is not None:
        match = _ACCOUNT_TAIL.match(account)
        if match is not None:
            draft.payment_bank = match.group(1) or None
            draft.payment_accounts = (match.group(2).strip(),)
        else:
            draft.payment_accounts = (account,)
    total = reader.amount("fp:TaxInclusiveTotalAmount")
    draft.total_amount = total
    draft.payable_amount = total
    draft.tax_exclusive_amount = optional_amount(
        reader.one("fp:TaxExclusiveTotalAmount"), field=reader.where("fp:TaxExclusiveTotalAmount")
    )
    draft.tax_amount = reader.amount("fp:TaxTotalAmount")
    words = "fp:TaxInclusiveTotalAmountWithWords"
    _words_sign_check(draft, reader.one(words), total, reader.where(words))
    original_code = reader.one("fp:OriginalInvoiceCode")
    original_no = reader.one("fp:OriginalInvoiceNo")
    if original_no:
        draft.preceding_invoices = (
            f"{original_code}-{original_no}" if original_code else original_no,
        )
    if draft.type_code == "1" or (total is not None and total < 0):
        draft.kind = DocumentKind.CREDIT_NOTE
    return draft


def _safe_infos(archive: zipfile.ZipFile, limits: Limits) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_zip_members:
        refuse("zip_too_many_members", f"more than {limits.max_zip_members} members in the OFD")
    total = 0
    for info in infos:
        name = info.filename
        if _UNSAFE_NAME.search(name) or ".." in name.split("/"):
            refuse("zip_unsafe_path", "an OFD member has an unsafe path", field=name[:200])
        if info.flag_bits & 0x1:
            refuse("zip_invalid", "encrypted OFD members are not accepted", field=name[:200])
        total += info.file_size
        if total > limits.max_zip_total_bytes:
            refuse(
                "decompressed_too_large",
                f"the OFD uncompresses to more than {limits.max_zip_total_bytes} bytes",
            )
        if info.file_size > 65536 and info.file_size > limits.max_zip_ratio * max(
            info.compress_size, 1
        ):
            refuse(
                "zip_compression_ratio",
                f"an OFD member is compressed more than {limits.max_zip_ratio}:1",
                field=name[:200],
            )
    return infos


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """The member's bytes, never more than ``cap`` whatever its header claims."""
    try:
        with archive.open(info) as handle:
            data = handle.read(cap + 1)
    except Exception as exc:  # zipfile raises zlib.error, ValueError, … on corrupt members
        refuse("zip_invalid", f"an OFD member cannot be read: {type(exc).__name__}")
    if len(data) > cap:
        refuse("decompressed_too_large", f"an OFD member uncompresses to more than {cap} bytes")
    return data


def open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, but also ValueError, OverflowError … on corrupt input
        refuse("zip_invalid", f"not a readable ZIP/OFD package: {type(exc).__name__}")


def parse_ofd(
    data: bytes,
    *,
    limits: Limits,
    parse_xml: Callable[[bytes], etree._Element],
) -> Draft:
    """The invoice XML inside an OFD package (``Doc_N/Attachs/original_invoice.xml``, or an
    attachment whose root is a 数电票 ``EInvoice``)."""
    archive = open_zip(data)
    with archive:
        infos = _safe_infos(archive, limits)
        by_base = [
            i for i in infos if posixpath.basename(i.filename).lower() == "original_invoice.xml"
        ]
        candidates = by_base or [
            i
            for i in infos
            if "/attachs/" in i.filename.lower()
            and i.filename.lower().endswith(".xml")
            and posixpath.basename(i.filename).lower() != "attachments.xml"
        ]
        drafts: list[tuple[bytes, Draft]] = []
        for info in candidates:
            member = _read_member(archive, info, limits.max_xml_bytes)
            try:
                root = parse_xml(member)
            except InvoiceParseError:
                if by_base:
                    raise
                continue
            q = etree.QName(root)
            if q.namespace is None and q.localname == "eInvoice":
                drafts.append((member, parse_legacy(root, fmt=InvoiceFormat.OFD_ZIP)))
            elif q.namespace is None and q.localname == "EInvoice":
                drafts.append((member, parse_shudian(root, fmt=InvoiceFormat.OFD_ZIP)))
            elif by_base:
                refuse("ofd_no_invoice", "original_invoice.xml is not a known invoice document")
        if not drafts:
            refuse("ofd_no_invoice", "the OFD package carries no invoice XML attachment")
        if len({member for member, _ in drafts}) > 1:
            refuse("ofd_ambiguous_invoice", "the OFD package carries more than one invoice XML")
        draft = drafts[0][1]
        _cross_check_ofd(archive, infos, draft, limits, parse_xml)
    return draft


def _cross_check_ofd(
    archive: zipfile.ZipFile,
    infos: list[zipfile.ZipInfo],
    draft: Draft,
    limits: Limits,
    parse_xml: Callable[[bytes], etree._Element],
) -> None:
    """Warn when ``OFD.xml``'s 发票号码 does not match the attachment (never refuses on it)."""
    main = next((i for i in infos if i.filename == "OFD.xml"), None)
    if main is None or draft.invoice_number is None:
        return
    root = parse_xml(_read_member(archive, main, limits.max_xml_bytes))
    reader = Reader(root, _OFD, "/ofd:OFD")
    shown = reader.many("ofd:DocBody/ofd:DocInfo/ofd:CustomDatas/ofd:CustomData[@Name='发票号码']")
    if shown and not draft.invoice_number.endswith(shown[0]):
        draft.warn(
            "ofd_number_mismatch", "OFD.xml CustomDatas 发票号码 differs from the attachment"
        )
