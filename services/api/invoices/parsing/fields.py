"""Reading fields by XPath with the rules every XML format shares.

A single-valued field that occurs twice is refused (``duplicate_element``), not silently read as
its first occurrence; values are the element's full string value, stripped of XML white space;
the ``field`` of a refusal is the XPath that was read.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from .errors import refuse
from .values import parse_amount
from .xml import text_of

_XML_SPACE = " \t\r\n"


def xpath_of(node: etree._Element) -> str:
    """A readable XPath of ``node`` with the document's own prefixes (``/Invoice/cac:X[2]/…``)."""
    steps: list[str] = []
    current: etree._Element | None = node
    while current is not None:
        q = etree.QName(current)
        name = f"{current.prefix}:{q.localname}" if current.prefix else q.localname
        parent = current.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == current.tag]
            if len(same) > 1:
                name += f"[{same.index(current) + 1}]"
        steps.append(name)
        current = parent
    return "/" + "/".join(reversed(steps))


class Paths:
    """Compiled XPath expressions for one namespace mapping, compiled once and reused."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self.namespaces = namespaces
        self._cache: dict[str, etree.XPath] = {}

    def __call__(self, path: str) -> etree.XPath:
        compiled = self._cache.get(path)
        if compiled is None:
            compiled = etree.XPath(path, namespaces=self.namespaces, smart_strings=False)
            self._cache[path] = compiled
        return compiled


class Reader:
    """Field access on one document; ``base`` prefixes the XPaths named in errors."""

    def __init__(self, root: etree._Element, paths: Paths, base: str) -> None:
        self.root = root
        self.paths = paths
        self.base = base

    def where(self, path: str, ctx: str | None = None) -> str:
        return f"{self.base}/{ctx}/{path}" if ctx else f"{self.base}/{path}"

    def nodes(self, path: str, node: etree._Element | None = None) -> list[etree._Element]:
        result = self.paths(path)(self.root if node is None else node)
        assert isinstance(result, list)
        return [n for n in result if isinstance(n, etree._Element)]

    def element(
        self, path: str, node: etree._Element | None = None, ctx: str | None = None
    ) -> etree._Element | None:
        found = self.nodes(path, node)
        if len(found) > 1:
            where = self.where(path, ctx)
            refuse("duplicate_element", f"{where} occurs {len(found)} times", field=where)
        return found[0] if found else None

    def one(
        self, path: str, node: etree._Element | None = None, ctx: str | None = None
    ) -> str | None:
        """The stripped string value of the single element at ``path``; None if absent or empty."""
        found = self.element(path, node, ctx)
        if found is None:
            return None
        value = text_of(found).strip(_XML_SPACE)
        return value or None

    def many(self, path: str, node: etree._Element | None = None) -> tuple[str, ...]:
        """Every distinct non-empty value at ``path``, in document order."""
        values = (text_of(n).strip(_XML_SPACE) for n in self.nodes(path, node))
        return tuple(dict.fromkeys(v for v in values if v))

    def distinct(
        self, path: str, node: etree._Element | None = None, ctx: str | None = None
    ) -> str | None:
        """One value that may be repeated identically (e.g. a due date in each payment term)."""
        values = set(self.many(path, node))
        if len(values) > 1:
            where = self.where(path, ctx)
            refuse("duplicate_element", f"{where} has {len(values)} different values", field=where)
        return values.pop() if values else None

    def amount(
        self, path: str, node: etree._Element | None = None, ctx: str | None = None
    ) -> Decimal | None:
        found = self.element(path, node, ctx)
        if found is None:
            return None
        return parse_amount(text_of(found), field=self.where(path, ctx))

    def check_currencies(
        self, currency: str, tax_currency: str | None, tax_amount_tags: frozenset[str]
    ) -> None:
        """Every ``currencyID`` is the document currency, except the VAT total in the tax
        currency (BT-111) on the elements named in ``tax_amount_tags``."""
        for node in self.nodes("//*[@currencyID]"):
            value = (node.get("currencyID") or "").strip(_XML_SPACE)
            if value == currency:
                continue
            if tax_currency is not None and value == tax_currency and node.tag in tax_amount_tags:
                continue
            where = xpath_of(node)
            refuse(
                "currency_mismatch",
                f"currencyID {value[:8]!r} differs from the document currency {currency}",
                field=where,
            )
