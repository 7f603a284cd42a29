"""Languages of the web pages: Simplified Chinese (``zh_CN``) and English (``en``).

Messages are written in English in the templates and the Python code (``_("…")``); the Chinese
catalog is ``locale/zh_CN/LC_MESSAGES/messages.po``, extracted and updated with Babel (docs/web.md).
The ``.po`` files are compiled in memory when the module is first used (ADR 0016): no compiled
``.mo`` file is committed or has to be built by an install step.

The page's language: ``?lang=`` (remembered in the ``qilian_lang`` cookie), else that cookie, else
the browser's ``Accept-Language``, else Chinese. Money and dates are formatted with Babel for the
page's language; times are shown in China Standard Time, where the platform's users are.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, get_currency_symbol
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request

from qilian.kit.money import Money, minor_exponent

HERE: Final = Path(__file__).resolve().parent
LOCALE_DIR: Final = HERE / "locale"
TEMPLATES_DIR: Final = HERE / "templates"
DOMAIN: Final = "messages"

LANGUAGES: Final = {"zh_CN": "中文", "en": "English"}  # code → name in its own language
DEFAULT: Final = "zh_CN"
COOKIE: Final = "qilian_lang"
TIMEZONE: Final = ZoneInfo("Asia/Shanghai")

_ALIASES: Final = {
    "zh": "zh_CN",
    "zh-cn": "zh_CN",
    "zh_cn": "zh_CN",
    "zh-hans": "zh_CN",
    "en": "en",
}


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated when an environment is built."""
    return message


# labels looked up per table cell: translated once per language, not once per cell
STATE_LABELS: Final = {
    "pending": N_("pending"),
    "confirmed": N_("confirmed"),
    "rejected": N_("rejected"),
    "cancelled": N_("cancelled"),
    "held": N_("held"),
    "split": N_("split"),
    "transferred": N_("transferred"),
    "unfinanced": N_("unfinanced"),
    "in_auction": N_("in auction"),
    "financed": N_("financed"),
    "open": N_("open"),
    "partially_paid": N_("partially paid"),
    "paid": N_("paid"),
    "overdue": N_("overdue"),
    "written_off": N_("written off"),
    "none": N_("none"),
    "resolved": N_("resolved"),
    "dispute:open": N_("open dispute"),
}
AXIS_NAMES: Final = {
    "confirmation": N_("Confirmation"),
    "holding": N_("Holding"),
    "financing": N_("Financing"),
    "settlement": N_("Settlement"),
    "dispute": N_("Dispute"),
}
ANCHOR_LABELS: Final = {
    "pending": N_("anchoring pending"),
    "anchored": N_("anchored"),
    "final": N_("anchored, final"),
    "unknown": N_("ledger unreachable"),
}


def normalise(code: str | None) -> str | None:
    """``zh-CN``, ``zh_cn``, ``zh``, ``en-GB`` … → a language of :data:`LANGUAGES`, or None."""
    if not code:
        return None
    lowered = code.strip().lower()
    if lowered in _ALIASES:
        return _ALIASES[lowered]
    primary = lowered.replace("_", "-").split("-")[0]
    return _ALIASES.get(primary)


def from_accept_language(header: str | None) -> str | None:
    """The best of our languages for an ``Accept-Language`` header (quality values honoured)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag))
    for _, _, tag in sorted(ranked):
        found = normalise(tag)
        if found:
            return found
    return None


def choose(request: Request) -> str:
    return (
        normalise(request.query_params.get("lang"))
        or normalise(request.cookies.get(COOKIE))
        or from_accept_language(request.headers.get("accept-language"))
        or DEFAULT
    )


@cache
def translations(language: str) -> NullTranslations:
    """The language's catalog, compiled from its ``.po`` file in memory (English is the source)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


@cache
def _currency_style(language: str, currency: str) -> tuple[str, int, str, str] | None:
    """Symbol, digits, group and decimal signs when the language writes money as
    ``¤#,##0.00`` (both of ours do); None to let Babel format it in full."""
    locale = _locale(language)
    if locale.currency_formats["standard"].pattern != "¤#,##0.00":
        return None
    symbols = locale.number_symbols.get("latn", locale.number_symbols)
    return (
        get_currency_symbol(currency, locale),
        minor_exponent(currency),
        str(symbols["group"]),
        str(symbols["decimal"]),
    )


@dataclass(frozen=True)
class Formats:
    """Money, numbers and dates as the page's language writes them (Babel's data; the common
    money pattern is applied directly, as a table shows hundreds of amounts)."""

    language: str

    @property
    def locale(self) -> Locale:
        return _locale(self.language)

    def money(self, value: Money | dict[str, Any] | Any, currency: str | None = None) -> str:
        """A :class:`Money`, a ``{"amount", "currency"}`` mapping, or minor units + currency."""
        if isinstance(value, Money):
            amount, code = value.amount, value.currency
        elif isinstance(value, dict):
            amount, code = Decimal(str(value["amount"])), str(value["currency"])
        elif hasattr(value, "amount") and hasattr(value, "currency"):
            amount, code = Decimal(str(value.amount)), str(value.currency)
        else:
            assert currency is not None, "minor units need their currency"
            money = Money(int(value), currency)
            amount, code = money.amount, money.currency
        style = _currency_style(self.language, code)
        if style is None:
            return format_currency(amount, code, locale=self.locale)
        symbol, digits, group, decimal = style
        text = f"{abs(amount):,.{digits}f}".translate({44: "\x00", 46: "\x01"})
        text = text.replace("\x00", group).replace("\x01", decimal)
        return f"{'-' if amount < 0 else ''}{symbol}{text}"

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def date(self, value: dt.date | str | None) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = dt.date.fromisoformat(value[:10])
        return _date(value, self.language)

    def month(self, value: dt.date) -> str:
        return format_skeleton("yMMMM", value, locale=self.locale)

    def datetime(self, value: dt.datetime | str | None) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        text = format_datetime(value, format="medium", tzinfo=TIMEZONE, locale=self.locale)
        return f"{text} (UTC+8)"


@lru_cache(maxsize=4096)
def _date(value: dt.date, language: str) -> str:
    """Due dates repeat down a table: each is formatted once."""
    return format_date(value, format="medium", locale=_locale(language))


def state_badge(labels: dict[str, str]) -> Any:
    """``state(axis, value)`` of the templates: a badge, built once per axis and value."""
    made: dict[tuple[str, str], Markup] = {}

    def badge(axis: str, value: str) -> Markup:
        found = made.get((axis, value))
        if found is None:
            label = labels.get(f"{axis}:{value}") or labels.get(value, value)
            a, v = escape(axis), escape(value)
            found = Markup(  # noqa: S704 - every part is escaped
                f'<span class="state s-{a}-{v}" data-axis="{a}" data-state="{v}">'
                f"{escape(label)}</span>"
            )
            made[(axis, value)] = found
        return found

    return badge


def anchor_badge(labels: dict[str, str]) -> Any:
    """``anchor_badge(status)`` of the templates."""

    def badge(status: str) -> Markup:
        s = escape(status)
        label = escape(labels.get(status, status))
        html = f'<span class="badge anchor-{s}" data-anchor="{s}">{label}</span>'
        return Markup(html)  # noqa: S704 - every part is escaped

    return badge


@cache
def environment(language: str) -> Environment:
    """The Jinja2 environment of one language: its translations and formatting filters."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    formats = Formats(language)
    env.filters["money"] = formats.money
    env.filters["number"] = formats.number
    env.filters["date"] = formats.date
    env.filters["month"] = formats.month
    env.filters["datetime"] = formats.datetime
    env.globals["language"] = language
    env.globals["html_lang"] = "zh-CN" if language == "zh_CN" else "en"
    env.globals["languages"] = LANGUAGES
    catalog = translations(language)
    for name, labels in (
        ("state_labels", STATE_LABELS),
        ("axis_names", AXIS_NAMES),
        ("anchor_labels", ANCHOR_LABELS),
    ):
        env.globals[name] = {key: catalog.gettext(text) for key, text in labels.items()}
    env.globals["state"] = state_badge(env.globals["state_labels"])  # type: ignore[arg-type]
    env.globals["anchor_badge"] = anchor_badge(env.globals["anchor_labels"])  # type: ignore[arg-type]
    return env


def gettext(language: str, message: str, **values: Any) -> str:
    """A message of the Python code in the page's language (``%(name)s`` placeholders)."""
    text = translations(language).gettext(message)
    return text % values if values else text
