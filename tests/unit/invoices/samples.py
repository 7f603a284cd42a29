"""Small invoices built in code (no corpus needed): a UBL 2.1 invoice with the usual EN 16931
fields, a CII D16B one, a 数电票 and an OFD ZIP. Used by the unit tests and by
``bench/ingest_parse.py`` to generate many invoices."""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

UBL_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>
  <cbc:ID>{number}</cbc:ID>
  <cbc:IssueDate>{issue}</cbc:IssueDate>
  <cbc:DueDate>{due}</cbc:DueDate>
  <cbc:InvoiceTypeCode>{type_code}</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>{currency}</cbc:DocumentCurrencyCode>
  <cac:AccountingSupplierParty><cac:Party>
    <cac:PartyName><cbc:Name>{seller}</cbc:Name></cac:PartyName>
    <cac:PartyTaxScheme><cbc:CompanyID>{seller_vat}</cbc:CompanyID>
      <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>{seller}</cbc:RegistrationName>
      <cbc:CompanyID>{seller_legal}</cbc:CompanyID></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party>
    <cac:PartyTaxScheme><cbc:CompanyID>{buyer_vat}</cbc:CompanyID>
      <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>{buyer}</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingCustomerParty>
  {payee}<cac:PaymentMeans><cbc:PaymentMeansCode>58</cbc:PaymentMeansCode>
    <cac:PayeeFinancialAccount><cbc:ID>{iban}</cbc:ID></cac:PayeeFinancialAccount>
  </cac:PaymentMeans>
  <cac:TaxTotal><cbc:TaxAmount currencyID="{currency}">{tax}</cbc:TaxAmount></cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="{currency}">{net}</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="{currency}">{net}</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="{currency}">{total}</cbc:TaxInclusiveAmount>
    <cbc:PrepaidAmount currencyID="{currency}">{prepaid}</cbc:PrepaidAmount>
    <cbc:PayableAmount currencyID="{currency}">{payable}</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine><cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="C62">1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="{currency}">{net}</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Goods</cbc:Name></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="{currency}">{net}</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</Invoice>
"""


def ubl_invoice(
    *,
    number: str = "INV-1",
    issue: str = "2026-01-15",
    due: str = "2026-03-15",
    type_code: str = "380",
    currency: str = "EUR",
    seller: str = "Seller GmbH",
    seller_vat: str = "DE123456788",
    seller_legal: str = "HRB 1",
    buyer: str = "Core Buyer AG",
    buyer_vat: str = "DE987654328",
    net: str = "100.00",
    tax: str = "19.00",
    total: str = "119.00",
    prepaid: str = "0.00",
    payable: str = "119.00",
    payee: str | None = None,
    iban: str = "DE02120300000000202051",
) -> bytes:
    """A UBL 2.1 invoice; every argument is written verbatim (escaped) into its element."""
    values = {
        k: escape(v)
        for k, v in {
            "number": number,
            "issue": issue,
            "due": due,
            "type_code": type_code,
            "currency": currency,
            "seller": seller,
            "seller_vat": seller_vat,
            "seller_legal": seller_legal,
            "buyer": buyer,
            "buyer_vat": buyer_vat,
            "net": net,
            "tax": tax,
            "total": total,
            "prepaid": prepaid,
            "payable": payable,
            "iban": iban,
        }.items()
    }
    values["payee"] = (
        f"<cac:PayeeParty><cac:PartyName><cbc:Name>{escape(payee)}</cbc:Name></cac:PartyName>"
        "</cac:PayeeParty>\n  "
        if payee
        else ""
    )
    return UBL_TEMPLATE.format(**values).encode("utf-8")


CII_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
 xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
 xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>
    <ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument><ram:ID>{number}</ram:ID><ram:TypeCode>{type_code}</ram:TypeCode>
    <ram:IssueDateTime>
      <udt:DateTimeString format="102">{issue}</udt:DateTimeString></ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:ApplicableHeaderTradeAgreement>
      <ram:SellerTradeParty><ram:Name>Seller GmbH</ram:Name>
        <ram:SpecifiedTaxRegistration>
          <ram:ID schemeID="VA">DE123456788</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty><ram:Name>Core Buyer AG</ram:Name></ram:BuyerTradeParty>
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime>
        <udt:DateTimeString format="102">{due}</udt:DateTimeString></ram:DueDateDateTime>
      </ram:SpecifiedTradePaymentTerms>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:TaxBasisTotalAmount>100.00</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">19.00</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>119.00</ram:GrandTotalAmount>
        <ram:DuePayableAmount>{payable}</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"""


def cii_invoice(
    *,
    number: str = "INV-1",
    type_code: str = "380",
    issue: str = "20260115",
    due: str = "20260315",
    payable: str = "119.00",
) -> bytes:
    return CII_TEMPLATE.format(
        number=escape(number), type_code=type_code, issue=issue, due=due, payable=payable
    ).encode("utf-8")


SHUDIAN_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<EInvoice>
  <Header><EIid>{number}</EIid><EInvoiceTag>SWEI9900</EInvoiceTag><Version>0.32</Version>
    <InherentLabel><GeneralOrSpecialVAT><LabelName>增值税专用发票</LabelName></GeneralOrSpecialVAT>
    </InherentLabel></Header>
  <EInvoiceData>
    <SellerInformation><SellerIdNum>91999999MA0XF0001M</SellerIdNum>
      <SellerName>测试供应商（虚构）有限公司</SellerName>
      <SellerBankName>测试银行</SellerBankName><SellerBankAccNum>6200000000000000001</SellerBankAccNum>
    </SellerInformation>
    <BuyerInformation><BuyerIdNum>91999999MA00BUYR00</BuyerIdNum>
      <BuyerName>测试核心企业（虚构）集团有限公司</BuyerName></BuyerInformation>
    <BasicInformation><TotalAmWithoutTax>{net}</TotalAmWithoutTax><TotalTaxAm>{tax}</TotalTaxAm>
      <TotalTax-includedAmount>{total}</TotalTax-includedAmount>
      <TotalTax-includedAmountInChinese>{words}</TotalTax-includedAmountInChinese>
    </BasicInformation>
    <AdditionalInformation><Remark>{remark}</Remark></AdditionalInformation>
  </EInvoiceData>
  <TaxSupervisionInfo><InvoiceNumber>{number}</InvoiceNumber><IssueTime>{issued}</IssueTime>
  </TaxSupervisionInfo>
</EInvoice>
"""


def shudian_invoice(
    *,
    number: str = "25999000000000000009",
    issued: str = "2025-03-18 16:05:42",
    net: str = "100000.00",
    tax: str = "13000.00",
    total: str = "113000.00",
    words: str = "壹拾壹万叁仟圆整",
    remark: str = "",
) -> bytes:
    return SHUDIAN_TEMPLATE.format(
        number=number, issued=issued, net=net, tax=tax, total=total, words=words, remark=remark
    ).encode("utf-8")


def ofd_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """An OFD-shaped ZIP with the given members (``OFD.xml`` added when missing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        if "OFD.xml" not in members:
            archive.writestr(
                "OFD.xml",
                '<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"'
                ' Version="1.1" DocType="OFD"/>',
            )
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
