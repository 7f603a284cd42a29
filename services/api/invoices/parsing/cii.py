"""UN/CEFACT Cross Industry Invoice D16B (Factur-X/ZUGFeRD 2.x, XRechnung-CII) and ZUGFeRD 1.0.

ZUGFeRD 1.0 (``urn:ferd:CrossIndustryDocument:invoice:1p0``) carries the same business terms under
older element names; one reader serves both through a table of paths. Dates are format 102
(``YYYYMMDD``). The mapping is the table in docs/invoices.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from .errors import refuse
from .fields import Paths, Reader
from .model import InvoiceFormat, Party
from .values import Draft, parse_amount, parse_cii_date
from .xml import text_of

_UNECE = "urn:un:unece:uncefact:data:standard"
CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
ZUGFERD1_NS = "urn:ferd:CrossIndustryDocument:invoice:1p0"


@dataclass(frozen=True, slots=True)
class _Syntax:
    root: str
    syntax: str
    format: InvoiceFormat
    paths: Paths
    context: str
    header: str
    agreement: str
    settlement: str
    summation: str
    preceding: str


_D16B = _Syntax(
    root="CrossIndustryInvoice",
    syntax="cii-d16b",
    format=InvoiceFormat.CII,
    paths=Paths(
        {
            "rsm": CII_NS,
            "ram": f"{_UNECE}:ReusableAggregateBusinessInformationEntity:100",
            "udt": f"{_UNECE}:UnqualifiedDataType:100",
        }
    ),
    context="rsm:ExchangedDocumentContext",
    header="rsm:ExchangedDocument",
    agreement="rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement",
    settlement="rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement",
    summation="ram:SpecifiedTradeSettlementHeaderMonetarySummation",
    preceding="ram:InvoiceReferencedDocument/ram:IssuerAssignedID",
)

_ZUGFERD1 = _Syntax(
    root="CrossIndustryDocument",
    syntax="zugferd-1.0",
    format=InvoiceFormat.ZUGFERD_1,
    paths=Paths(
        {
            "rsm": ZUGFERD1_NS,
            "ram": f"{_UNECE}:ReusableAggregateBusinessInformationEntity:12",
            "udt": f"{_UNECE}:UnqualifiedDataType:15",
        }
    ),
    context="rsm:SpecifiedExchangedDocumentContext",
    header="rsm:HeaderExchangedDocument",
    agreement="rsm:SpecifiedSupplyChainTradeTransaction/ram:ApplicableSupplyChainTradeAgreement",
    settlement="rsm:SpecifiedSupplyChainTradeTransaction/ram:ApplicableSupplyChainTradeSettlement",
    summation="ram:SpecifiedTradeSettlementMonetarySummation",
    preceding="ram:InvoiceReferencedDocument/ram:ID",
)

_VAT = "ram:SpecifiedTaxRegistration/ram:ID[normalize-space(@schemeID)='VA']"
_OTHER_TAX = "ram:SpecifiedTaxRegistration/ram:ID[normalize-space(@schemeID)='FC']"
_ACCOUNTS = (
    "ram:SpecifiedTradeSettlementPaymentMeans/ram:PayeePartyCreditorFinancialAccount"
    "/*[self::ram:IBANID or self::ram:ProprietaryID]"
)
_DUE = "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString"


def _party(reader: Reader, node: etree._Element | None, ctx: str) -> Party:
    if node is None:
        return Party()
    return Party(
        name=reader.one("ram:Name", node, ctx),
        tax_id=reader.one(_VAT, node, ctx),
        tax_registration_id="|".join(reader.many(_OTHER_TAX, node)) or None,
        legal_id=reader.one("ram:SpecifiedLegalOrganization/ram:ID", node, ctx),
    )


def parse_cii(root: etree._Element, *, fmt: InvoiceFormat | None = None) -> Draft:
    """Read a CII D16B or ZUGFeRD 1.0 root (already dispatched on its exact qualified name)."""
    s = _ZUGFERD1 if etree.QName(root).namespace == ZUGFERD1_NS else _D16B
    reader = Reader(root, s.paths, f"/rsm:{s.root}")
    seller_path = f"{s.agreement}/ram:SellerTradeParty"
    buyer_path = f"{s.agreement}/ram:BuyerTradeParty"
    summation = f"{s.settlement}/{s.summation}"
    where = {
        "invoice_number": reader.where(f"{s.header}/ram:ID"),
        "type_code": reader.where(f"{s.header}/ram:TypeCode"),
        "issue_date": reader.where(f"{s.header}/ram:IssueDateTime/udt:DateTimeString"),
        "due_date": reader.where(f"{s.settlement}/{_DUE}"),
        "currency": reader.where(f"{s.settlement}/ram:InvoiceCurrencyCode"),
        "tax_currency": reader.where(f"{s.settlement}/ram:TaxCurrencyCode"),
        "payable_amount": reader.where(f"{summation}/ram:DuePayableAmount"),
        "seller.name": reader.where(f"{seller_path}/ram:Name"),
        "seller.tax_id": reader.where(f"{seller_path}/{_VAT}"),
        "buyer.name": reader.where(f"{buyer_path}/ram:Name"),
        "buyer.tax_id": reader.where(f"{buyer_path}/{_VAT}"),
        "payee": reader.where(f"{s.settlement}/ram:PayeeTradeParty/ram:Name"),
        "payment_accounts": reader.where(f"{s.settlement}/{_ACCOUNTS}"),
    }
    draft = Draft(format=fmt or s.format, syntax=s.syntax, where=where)
    draft.profile = reader.one(f"{s.context}/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID")
    header = reader.element(s.header)
    if header is not None:
        draft.invoice_number = reader.one("ram:ID", header, s.header)
        draft.type_code = reader.one("ram:TypeCode", header, s.header)
        issue = reader.element("ram:IssueDateTime/udt:DateTimeString", header, s.header)
        if issue is not None:
            draft.issue_date = parse_cii_date(
                text_of(issue), issue.get("format"), field=where["issue_date"]
            )
    draft.seller = _party(reader, reader.element(seller_path), seller_path)
    draft.buyer = _party(reader, reader.element(buyer_path), buyer_path)
    settlement = reader.element(s.settlement)
    if settlement is None:
        return draft
    ctx = s.settlement
    draft.currency = reader.one("ram:InvoiceCurrencyCode", settlement, ctx)
    draft.tax_currency = reader.one("ram:TaxCurrencyCode", settlement, ctx)
    if draft.currency is not None:
        tax_tags = frozenset({f"{{{s.paths.namespaces['ram']}}}TaxTotalAmount"})
        reader.check_currencies(draft.currency, draft.tax_currency, tax_tags)
    due_nodes = reader.nodes(_DUE, settlement)
    due_values = {
        parse_cii_date(text_of(n), n.get("format"), field=where["due_date"]) for n in due_nodes
    }
    if len(due_values) > 1:
        refuse(
            "duplicate_element",
            f"{where['due_date']} has {len(due_values)} different values",
            field=where["due_date"],
        )
    draft.due_date = due_values.pop() if due_values else None
    draft.payee = reader.one("ram:PayeeTradeParty/ram:Name", settlement, ctx)
    draft.payment_accounts = reader.many(_ACCOUNTS, settlement)
    draft.preceding_invoices = reader.many(s.preceding, settlement)
    totals = reader.element(s.summation, settlement, ctx)
    if totals is not None:
        draft.payable_amount = reader.amount("ram:DuePayableAmount", totals, summation)
        draft.total_amount = reader.amount("ram:GrandTotalAmount", totals, summation)
        draft.prepaid_amount = reader.amount("ram:TotalPrepaidAmount", totals, summation)
        draft.tax_exclusive_amount = reader.amount("ram:TaxBasisTotalAmount", totals, summation)
        draft.rounding_amount = reader.amount("ram:RoundingAmount", totals, summation)
        draft.tax_amount = _tax_total(reader, totals, summation, draft.currency)
    return draft


def _tax_total(
    reader: Reader, totals: etree._Element, ctx: str, currency: str | None
) -> Decimal | None:
    """BT-110: ``TaxTotalAmount`` in the document currency (or without a currencyID); a second one
    in the tax currency is BT-111."""
    path = "ram:TaxTotalAmount"
    found = [
        n
        for n in reader.nodes(path, totals)
        if (n.get("currencyID") or currency or "").strip() == currency
    ]
    if len(found) > 1:
        where = reader.where(path, ctx)
        refuse("duplicate_element", f"{where} occurs {len(found)} times", field=where)
    return parse_amount(text_of(found[0]), field=reader.where(path, ctx)) if found else None
